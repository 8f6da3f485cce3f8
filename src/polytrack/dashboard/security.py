"""Who may talk to the dashboard, and the headers every answer carries.

The rules (docs/dashboard.md, "Security"):

- Bound to a loopback address (the default), no token is asked: only this machine can
  connect. A request whose `Host` header names anything but a loopback host is refused
  (403): a web page elsewhere could otherwise point a DNS name of its own at 127.0.0.1
  and read the dashboard from the user's browser (DNS rebinding).
- Bound to any other address, every request needs the token printed at startup: once as
  `?token=` (which sets an HttpOnly, SameSite=Strict cookie and redirects to the same URL
  without it, so the token leaves the address bar and the history), then by that cookie,
  or as `Authorization: Bearer <token>`. Compared in constant time.
- Every response carries a strict Content-Security-Policy (no inline script or style, no
  other origin; a media file keeps its own, stricter sandbox policy), `nosniff`, no
  referrer, and `Cache-Control: no-store` under /api.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

__all__ = [
    "COOKIE",
    "cookie_name",
    "SecurityMiddleware",
    "check_run_ref",
    "content_security_policy",
    "is_loopback",
    "new_token",
]

_CSP: Final = b"content-security-policy"
COOKIE: Final = "polytrack_token"  # + "_<port>": see `cookie_name`

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The one hash is that of the empty string: an empty <style> element is allowed (and
# nothing else inline), which plotly fills through the CSSOM (`insertRule`), as any
# script of this origin may; its rules would otherwise be refused, element and all.
_EMPTY_STYLE: Final = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
_BASE_CSP: Final = (
    f"default-src 'self'; script-src 'self'; style-src 'self' {_EMPTY_STYLE}; "
    "img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
)
# A run reference in a URL: an id, an id prefix or a run name (names are free text, so
# only what cannot be one is refused: control characters, separators, dot segments).
_RUN_REF: Final = re.compile(r"[^\x00-\x1f\x7f/\\]{1,256}")


def new_token() -> str:
    """A fresh random token for a non-loopback bind."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name, without port) is this machine only."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def content_security_policy(*, loopback: bool) -> str:
    """The CSP header; on loopback, a notebook (Jupyter on localhost) may frame the page."""
    ancestors = "'self' http://localhost:* http://127.0.0.1:*" if loopback else "'self'"
    return f"{_BASE_CSP}frame-ancestors {ancestors}"


def check_run_ref(ref: str) -> bool:
    """Whether `ref` may be a run id, id prefix or name (anything else: 404)."""
    return _RUN_REF.fullmatch(ref) is not None and ref not in (".", "..")


def cookie_name(port: int | None) -> str:
    """The token cookie's name for a server on `port`: cookies ignore ports, and two
    dashboards on one host must not overwrite each other's token."""
    return COOKIE if port is None else f"{COOKIE}_{port}"


def _host_name(host_header: str) -> str:
    """The host of a `Host` header, without its port (`[::1]:5005` -> `::1`)."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class SecurityMiddleware:
    """ASGI middleware enforcing the module's rules around the whole app."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback: bool) -> None:
        self.app = app
        self.token = token
        self.loopback = loopback
        self.csp = content_security_policy(loopback=loopback).encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return  # no websockets here
        path: str = scope.get("path", "")
        is_api = path.startswith("/api/") or path == "/api"
        headers = _headers(scope)

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A response that sets its own policy keeps it: a media file's is the
                # sandbox (`media.FILE_CSP`), stricter than the pages' one.
                own = [v for n, v in message.get("headers", []) if n.lower() == _CSP]
                extra = [
                    (_CSP, own[0] if own else self.csp),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if is_api:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in {n for n, _ in extra}
                ] + extra
            await send(message)

        if self.loopback and not is_loopback(_host_name(headers.get("host", ""))):
            await _refuse(send_secured, 403, "forbidden", _FORBIDDEN_TEXT, is_api=is_api)
            return
        if self.token is not None:
            server = scope.get("server")
            cookie = cookie_name(server[1] if server else None)
            given = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if "token" in given:
                if not self._matches(given["token"]):
                    await _refuse(send_secured, 401, "unauthorized", _TOKEN_TEXT, is_api=is_api)
                    return
                await self._redirect_with_cookie(send_secured, path, given, cookie)
                return
            if not (self._matches(_bearer(headers)) or self._matches(_cookie(headers, cookie))):
                await _refuse(send_secured, 401, "unauthorized", _TOKEN_TEXT, is_api=is_api)
                return
        await self.app(scope, receive, send_secured)

    def _matches(self, given: str | None) -> bool:
        if given is None or self.token is None:
            return False
        return secrets.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))

    async def _redirect_with_cookie(
        self, send: Send, path: str, query: dict[str, str], name: str
    ) -> None:
        rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
        location = (path or "/") + (f"?{rest}" if rest else "")
        cookie = f"{name}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1", "replace")),
                    (b"set-cookie", cookie.encode("latin-1")),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


_FORBIDDEN_TEXT: Final = (
    "This dashboard answers only to localhost: open it as http://127.0.0.1:<port>/ "
    "(the Host header named another host)."
)
_TOKEN_TEXT: Final = (
    "This dashboard needs its token: open the URL with ?token=... that `polytrack ui` "
    "printed in its terminal, or send 'Authorization: Bearer <token>'."
)


def _headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials else None


def _cookie(headers: dict[str, str], cookie: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == cookie:
            return value
    return None


async def _refuse(send: Send, status: int, kind: str, text: str, *, is_api: bool) -> None:
    import html
    import json

    if is_api:
        body = json.dumps(
            {"error": {"kind": kind, "message": text, "position": None, "expression": None}}
        ).encode()
        content_type = b"application/json"
    else:
        title = "Token needed" if status == 401 else "Forbidden"
        body = (
            f"<!doctype html><html><head><meta charset=utf-8><title>polytrack: {title}"
            f"</title></head><body><h1>{title}</h1><p>{html.escape(text)}</p></body></html>"
        ).encode()
        content_type = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
