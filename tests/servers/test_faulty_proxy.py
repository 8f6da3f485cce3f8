"""The fault-injection proxy, in front of a tiny real HTTP server in a thread."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from .faulty_proxy import Fault, FaultyProxy

MiB = 2**20


class _Upstream(ThreadingHTTPServer):
    """Answers every request with what it received; `received` lists them in order."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, chunked
    server: _Upstream

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def _body(self) -> tuple[int, str]:
        digest, size = hashlib.sha256(), 0
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            while True:
                chunk = int(self.rfile.readline().split(b";")[0], 16)
                if chunk == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self.rfile.read(chunk)
                self.rfile.readline()
                digest.update(data)
                size += len(data)
        else:
            left = int(self.headers.get("Content-Length", 0))
            while left:
                data = self.rfile.read(min(left, MiB))
                digest.update(data)
                size += len(data)
                left -= len(data)
        return size, digest.hexdigest()

    def _answer(self) -> None:
        size, sha256 = self._body()
        seen = {
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host"),
            "transfer_encoding": self.headers.get("Transfer-Encoding"),
            "expect": self.headers.get("Expect"),
            "size": size,
            "sha256": sha256,
        }
        with self.server.lock:
            self.server.received.append(seen)
        if self.path == "/chunked-answer":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"one,", b"two,", b"three"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/until-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"body without a length")
            self.close_connection = True
            return
        body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="echo-upstream"
    )
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def proxy(upstream: _Upstream) -> Iterator[FaultyProxy]:
    with FaultyProxy.start(upstream.url) as running:
        yield running
    assert not [t for t in threading.enumerate() if t.name.startswith("faulty-proxy")]


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_passes_requests_through_with_the_upstreams_host(
    proxy: FaultyProxy, upstream: _Upstream, http: requests.Session
) -> None:
    """With no rule, a request reaches the upstream (Host rewritten) and its answer comes back."""
    answer = http.get(f"{proxy.url}/hello?x=1", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["path"] == "/hello?x=1"
    assert answer.json()["host"] == upstream.url.removeprefix("http://")
    assert proxy.seen["/hello"] == proxy.forwarded["/hello"] == 1
    assert proxy.records[0].fault == Fault.passthrough()
    assert proxy.records[0].fault.kind == "passthrough"
    assert proxy.records[0].forwarded


def test_keeps_the_clients_host_when_told(upstream: _Upstream, http: requests.Session) -> None:
    """rewrite_host=False forwards the client's Host header (what SigV4 signatures cover)."""
    with FaultyProxy.start(upstream.url, rewrite_host=False) as proxy:
        answer = http.get(f"{proxy.url}/x", timeout=5)
    assert answer.json()["host"] == proxy.url.removeprefix("http://")


def test_keep_alive_serves_many_requests_on_one_connection(
    proxy: FaultyProxy, upstream: _Upstream, http: requests.Session
) -> None:
    """A session's requests share one client connection, HEAD and framed answers included."""
    assert http.get(f"{proxy.url}/a", timeout=5).status_code == 200
    assert http.head(f"{proxy.url}/b", timeout=5).status_code == 200
    assert http.get(f"{proxy.url}/chunked-answer", timeout=5).content == b"one,two,three"
    assert http.post(f"{proxy.url}/c", data=b"xyz", timeout=5).json()["size"] == 3
    assert proxy.connections == 1
    assert [r["path"] for r in upstream.received] == ["/a", "/b", "/chunked-answer", "/c"]


def test_relays_an_answer_that_ends_at_close(proxy: FaultyProxy, http: requests.Session) -> None:
    """An upstream answer without length or chunks is relayed whole, then the connection ends."""
    assert http.get(f"{proxy.url}/until-close", timeout=5).content == b"body without a length"
    assert http.get(f"{proxy.url}/after", timeout=5).status_code == 200
    assert proxy.connections == 2


def test_relays_a_chunked_upload(
    proxy: FaultyProxy, upstream: _Upstream, http: requests.Session
) -> None:
    """A body of unknown length (requests sends a generator chunked) arrives byte-exact."""
    pieces = [b"a" * 10, b"b" * 70_000, b"c"]
    answer = http.put(f"{proxy.url}/upload", data=iter(pieces), timeout=5)
    assert answer.json()["transfer_encoding"] == "chunked"
    assert answer.json()["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_streams_a_20_mb_body(proxy: FaultyProxy, http: requests.Session, framing: str) -> None:
    """20 MB go through intact and quickly, with either framing."""
    data = os.urandom(20 * MiB)
    body: Any = (
        data
        if framing == "content-length"
        else (data[i : i + MiB] for i in range(0, len(data), MiB))
    )
    started = time.monotonic()
    answer = http.post(f"{proxy.url}/big", data=body, timeout=30)
    elapsed = time.monotonic() - started
    assert answer.json()["size"] == len(data)
    assert answer.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert elapsed < 10, f"20 MB took {elapsed:.1f}s"


def test_answers_expect_100_continue_itself(proxy: FaultyProxy, upstream: _Upstream) -> None:
    """A client that waits for 100 Continue gets it from the proxy; the upstream sees no Expect."""
    port = int(proxy.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(
            b"PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert raw.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        raw.sendall(b"hello")
        answer = b""
        while b'"sha256"' not in answer:
            answer += raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200")
    assert upstream.received[0]["size"] == 5
    assert upstream.received[0]["expect"] is None


def test_drop_before_forward_never_reaches_the_server(
    proxy: FaultyProxy, upstream: _Upstream, http: requests.Session
) -> None:
    """The connection closes after the request is read; the server never sees it."""
    proxy.fail_next(1, Fault.drop_before_forward())
    with pytest.raises(requests.ConnectionError):
        http.post(f"{proxy.url}/write", data=b"x" * 1000, timeout=5)
    assert upstream.received == []
    assert proxy.seen["/write"] == 1
    assert proxy.forwarded["/write"] == 0
    assert http.post(f"{proxy.url}/write", data=b"x", timeout=5).status_code == 200


def test_drop_after_forward_applies_the_request_but_loses_the_answer(
    proxy: FaultyProxy, upstream: _Upstream, http: requests.Session
) -> None:
    """The server gets and answers the request; the client only sees a closed connection."""
    proxy.fail_next(1, Fault.drop_after_forward())
    with pytest.raises(requests.ConnectionError):
        http.post(f"{proxy.url}/write", data=b"payload", timeout=5)
    assert [r["size"] for r in upstream.received] == [7]
    assert proxy.forwarded["/write"] == 1
    assert proxy.records[0].fault == Fault.drop_after_forward()


@pytest.mark.parametrize("code", [500, 502, 503])
def test_injects_server_errors(
    proxy: FaultyProxy, upstream: _Upstream, http: requests.Session, code: int
) -> None:
    """A status fault is answered by the proxy, body read, connection kept, nothing forwarded."""
    proxy.fail_next(1, Fault.status(code))
    answer = http.put(f"{proxy.url}/x", data=b"123", timeout=5)
    assert answer.status_code == code
    assert answer.text == "injected by faulty-proxy\n"
    assert http.get(f"{proxy.url}/x", timeout=5).status_code == 200
    assert proxy.connections == 1
    assert [r["method"] for r in upstream.received] == ["GET"]


def test_an_injected_answer_to_head_has_no_body(proxy: FaultyProxy, http: requests.Session) -> None:
    """A status fault on HEAD sends the head alone, so the kept-alive connection stays in step."""
    proxy.fail_next(1, Fault.status(503), method="HEAD")
    answer = http.head(f"{proxy.url}/x", timeout=5)
    assert (answer.status_code, answer.content) == (503, b"")
    assert http.get(f"{proxy.url}/y", timeout=5).json()["path"] == "/y"
    assert proxy.connections == 1


def test_throttle_answers_429_with_retry_after(proxy: FaultyProxy, http: requests.Session) -> None:
    """Fault.throttle(n) answers 429 Too Many Requests with Retry-After: n."""
    proxy.fail_next(1, Fault.throttle(2))
    answer = http.get(f"{proxy.url}/x", timeout=5)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2"


def test_delay_holds_back_an_answer_the_server_already_gave(
    proxy: FaultyProxy, upstream: _Upstream, http: requests.Session
) -> None:
    """A delayed request is applied at once; a client with a shorter timeout gives up on it."""
    proxy.fail_next(1, Fault.delay(0.5))
    with pytest.raises(requests.ReadTimeout):
        http.post(f"{proxy.url}/slow", data=b"1", timeout=0.2)
    assert len(upstream.received) == 1
    proxy.fail_next(1, Fault.delay(0.3))
    started = time.monotonic()
    assert http.get(f"{proxy.url}/slow", timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_fail_next_counts_down_per_matching_path_and_method(
    proxy: FaultyProxy, http: requests.Session
) -> None:
    """Only the next N requests matching the regex (and method) fail; then they pass again."""
    proxy.fail_next(2, Fault.status(503), path=r"^/runs/log-batch")
    proxy.fail_next(1, Fault.status(500), path="/runs", method="POST")

    def status(method: str, path: str) -> int:
        return http.request(method, f"{proxy.url}{path}", timeout=5).status_code

    assert status("POST", "/other") == 200
    assert status("POST", "/runs/log-batch?x=1") == 503
    assert status("GET", "/runs/get") == 200
    assert status("POST", "/runs/log-batch") == 503
    assert status("POST", "/runs/log-batch") == 500
    assert status("POST", "/runs/log-batch") == 200
    assert proxy.seen["/runs/log-batch"] == 4
    assert proxy.forwarded["/runs/log-batch"] == 1


def test_a_rule_without_count_holds_until_cleared(
    proxy: FaultyProxy, http: requests.Session
) -> None:
    """fail_next(None, ...) fails every matching request until clear()."""
    proxy.fail_next(None, Fault.status(502))
    assert [http.get(f"{proxy.url}/x", timeout=5).status_code for _ in range(3)] == [502] * 3
    proxy.clear()
    assert http.get(f"{proxy.url}/x", timeout=5).status_code == 200


def test_an_unreachable_upstream_gives_502(http: requests.Session) -> None:
    """With nothing listening upstream the proxy answers 502 Bad Gateway."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with FaultyProxy.start(dead) as proxy:
        assert http.get(f"{proxy.url}/x", timeout=5).status_code == 502
        assert proxy.forwarded["/x"] == 0


def test_stop_ends_every_thread_even_mid_delay(upstream: _Upstream) -> None:
    """stop() cuts a held-back answer short, joins all threads, and may be called again."""
    proxy = FaultyProxy.start(upstream.url)
    proxy.fail_next(1, Fault.delay(60))
    failures: list[BaseException] = []

    def call() -> None:
        try:
            requests.get(f"{proxy.url}/held", timeout=30)
        except requests.RequestException as exc:
            failures.append(exc)

    client = threading.Thread(target=call, name="test-client")
    client.start()
    while not upstream.received:
        time.sleep(0.01)
    started = time.monotonic()
    proxy.stop()
    client.join(10)
    assert time.monotonic() - started < 10  # not the 60 s of the delay, on a busy machine
    assert len(failures) == 1 and isinstance(failures[0], requests.ConnectionError)
    assert not [t for t in threading.enumerate() if t.name.startswith("faulty-proxy")]
    proxy.stop()
