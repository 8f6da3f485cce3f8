"""The dashboard's ASGI app: the JSON API, the built front-end, and the security wrapper.

`create_app` builds a fresh Starlette app for one home; nothing here touches the store
until a request comes (the store is read afresh on every request, see `api.py`), so
building it is cheap and the server starts at once whatever the home's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from polytrack.dashboard import api, media
from polytrack.dashboard.security import SecurityMiddleware
from polytrack.errors import (
    ArtifactNotFoundError,
    InvalidInputError,
    NotAStoreError,
    PolytrackError,
    QueryError,
    RunNotFoundError,
)

__all__ = ["STATIC_DIR", "create_app", "error_body"]

STATIC_DIR: Final = Path(__file__).parent / "static"
_MISSING_FRONTEND: Final = (
    "The dashboard's front-end is not built: {path} is missing. "
    "Run scripts/build-dashboard (see docs/dashboard.md); the JSON API under /api works "
    "meanwhile."
)


def error_body(
    kind: str, message: str, *, position: int | None = None, expression: str | None = None
) -> dict[str, Any]:
    """The contract's error object."""
    return {
        "error": {"kind": kind, "message": message, "position": position, "expression": expression}
    }


def _error(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(kind, message, **extra), status_code=status)


async def _query_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, QueryError)
    return _error(400, "query", exc.reason, position=exc.position, expression=exc.query)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, "not_found", str(exc))


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _error(400, "bad_request", str(exc))


async def _polytrack_error(request: Request, exc: Exception) -> Response:
    status = 409 if isinstance(exc, NotAStoreError) else 500
    return _error(status, "store", str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api"):
        kind = "not_found" if exc.status_code == 404 else "bad_request"
        return _error(exc.status_code, kind, exc.detail or "not found")
    return PlainTextResponse(exc.detail, status_code=exc.status_code)


def _page(request: Request) -> Response:
    """Every page route answers with index.html: the front-end routes on the client."""
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        return PlainTextResponse(_MISSING_FRONTEND.format(path=index), status_code=500)
    return FileResponse(index, media_type="text/html; charset=utf-8")


def _asset(request: Request) -> Response:
    """A file under static/assets; anything that would leave it is a 404."""
    assets = (STATIC_DIR / "assets").resolve()
    relative: str = request.path_params["path"]
    parts = relative.split("/")
    if not relative or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
        raise HTTPException(404, "no such asset")
    target = assets.joinpath(*parts).resolve()
    if not target.is_relative_to(assets) or not target.is_file():
        if not assets.is_dir():
            return PlainTextResponse(_MISSING_FRONTEND.format(path=assets), status_code=404)
        raise HTTPException(404, "no such asset")
    return FileResponse(target)


def create_app(home: Path, *, token: str | None, loopback: bool) -> Starlette:
    """The dashboard for the store at `home`.

    Args:
        home: the store to show (read through `polytrack.runs()` and friends).
        token: what a non-loopback client must present (see `security`); None: no token.
        loopback: the server listens on a loopback address only: requests must name a
            loopback host (DNS rebinding), and a notebook on localhost may frame the page.
    """
    routes = [
        *api.routes(),
        *media.routes(),
        Route("/", _page),
        Route("/runs/{rest:path}", _page),
        Route("/compare", _page),
        Route("/lineage", _page),
        Route("/assets/{path:path}", _asset),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            QueryError: _query_error,
            RunNotFoundError: _not_found,  # AmbiguousRunError included
            ArtifactNotFoundError: _not_found,
            InvalidInputError: _bad_request,
            api.BadRequest: _bad_request,
            PolytrackError: _polytrack_error,
            HTTPException: _http_error,
        },
    )
    app.state.home = home
    app.state.token = token
    app.add_middleware(SecurityMiddleware, token=token, loopback=loopback)
    return app
