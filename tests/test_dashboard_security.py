"""The dashboard's security rules: Host check on loopback, the token elsewhere, headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

import polytrack
from polytrack.dashboard.app import create_app
from polytrack.dashboard.security import (
    check_run_ref,
    content_security_policy,
    cookie_name,
    is_loopback,
)

TOKEN = "s3cret-token_value"
COOKIE = cookie_name(5005)  # the port of `_remote`


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    run = polytrack.init("p", "one", dir=home, mode="offline", capture=False)
    polytrack.log_metric("loss", 1.0, step=0)
    run.finish()
    return home


def _remote(home: Path) -> TestClient:
    app = create_app(home, token=TOKEN, loopback=False)
    return TestClient(app, base_url="http://10.1.2.3:5005", follow_redirects=False)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["127.0.0.1:5005", "localhost:5005", "[::1]:5005", "localhost"])
def test_loopback_accepts_loopback_hosts(home: Path, host: str) -> None:
    client = TestClient(create_app(home, token=None, loopback=True))
    response = client.get("/api/info", headers={"host": host})
    assert response.status_code == 200
    assert response.json()["token_required"] is False


@pytest.mark.parametrize("host", ["evil.example", "evil.example:5005", "10.0.0.1", "testserver"])
def test_loopback_refuses_other_hosts(home: Path, host: str) -> None:
    """DNS rebinding: a page of another site whose name resolves to 127.0.0.1."""
    client = TestClient(create_app(home, token=None, loopback=True))
    api = client.get("/api/runs", headers={"host": host})
    assert api.status_code == 403 and api.json()["error"]["kind"] == "forbidden"
    page = client.get("/", headers={"host": host})
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in page.headers


@pytest.mark.parametrize("path", ["/", "/runs/x", "/assets/app.js", "/api/info", "/api/runs"])
def test_remote_needs_the_token(home: Path, path: str) -> None:
    client = _remote(home)
    response = client.get(path)
    assert response.status_code == 401
    if path.startswith("/api"):
        assert response.json()["error"]["kind"] == "unauthorized"
    else:
        assert "token" in response.text and response.headers["content-type"].startswith("text/html")
    wrong = client.get(path, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    wrong_cookie = client.get(path, headers={"cookie": f"{COOKIE}={TOKEN}x"})
    assert wrong_cookie.status_code == 401
    right_cookie = client.get(path, headers={"cookie": f"other=1; {COOKIE}={TOKEN}"})
    assert right_cookie.status_code != 401


def test_remote_token_in_query_sets_a_cookie_and_redirects(home: Path) -> None:
    client = _remote(home)
    response = client.get("/runs/abc", params={"token": TOKEN, "x": "1"})
    assert response.status_code == 303
    assert response.headers["location"] == "/runs/abc?x=1"  # the token left the URL
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # the client keeps the cookie: later requests pass without the token
    assert client.get("/api/info").json()["token_required"] is True
    assert client.get("/").status_code == 200


def test_the_cookie_is_per_port(home: Path) -> None:
    """Cookies ignore ports: a dashboard on another port must not take this one's token."""
    assert cookie_name(5005) != cookie_name(5006)
    other = cookie_name(5006)
    response = _remote(home).get("/api/info", headers={"cookie": f"{other}={TOKEN}"})
    assert response.status_code == 401


def test_remote_wrong_token_in_query_is_refused(home: Path) -> None:
    response = _remote(home).get("/", params={"token": "guess"})
    assert response.status_code == 401 and "set-cookie" not in response.headers


def test_remote_bearer_token(home: Path) -> None:
    response = _remote(home).get("/api/runs", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.json()["total"] == 1


def test_remote_does_not_check_the_host(home: Path) -> None:
    client = _remote(home)
    response = client.get(
        "/api/info", headers={"authorization": f"Bearer {TOKEN}", "host": "box.lan:5005"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("loopback", [True, False])
def test_every_response_carries_the_headers(home: Path, loopback: bool) -> None:
    token = None if loopback else TOKEN
    client = TestClient(
        create_app(home, token=token, loopback=loopback),
        base_url="http://127.0.0.1:5005",
        headers={} if loopback else {"authorization": f"Bearer {TOKEN}"},
    )
    for path, status in (
        ("/", 200),
        ("/api/runs", 200),
        ("/api/runs/nosuch", 404),
        ("/api/runs?where=(", 400),
        ("/assets/missing.js", 404),
    ):
        response = client.get(path)
        assert response.status_code == status, path
        assert response.headers["content-security-policy"] == content_security_policy(
            loopback=loopback
        )
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        if path.startswith("/api"):
            assert response.headers["cache-control"] == "no-store"


def test_csp_is_strict() -> None:
    remote = content_security_policy(loopback=False)
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'self'",
    ):
        assert directive in remote
    assert "unsafe-inline" not in remote and "localhost" not in remote
    assert "frame-ancestors 'self' http://localhost:* http://127.0.0.1:*" in (
        content_security_policy(loopback=True)
    )


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ("a1b2c3d4", True),
        ("a1b2", True),
        ("my run name", True),
        ("..", False),
        (".", False),
        ("a/b", False),
        ("a\\b", False),
        ("a\x00b", False),
        ("a\nb", False),
        ("", False),
        ("x" * 257, False),
    ],
)
def test_run_refs(ref: str, ok: bool) -> None:
    assert check_run_ref(ref) is ok
