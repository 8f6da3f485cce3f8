"""An HTTP/1.1 reverse proxy on loopback that injects faults, for testing retries.

Put it between a client and a real server (MLflow, moto, a `http.server` in a thread) and
script what goes wrong:

```python
with FaultyProxy.start(server.url) as proxy:
    proxy.fail_next(2, Fault.status(503), path=r"/runs/log-batch$")
    proxy.fail_next(1, Fault.drop_after_forward(), path=r"/runs/log-batch$")
    client = Client(proxy.url)                  # talks to the proxy
    ...
    assert proxy.forwarded["/api/2.0/mlflow/runs/log-batch"] == 2
```
Faults:

- `Fault.passthrough()`: forward, relay the answer (what happens when no rule matches);
- `Fault.drop_before_forward()`: read the whole request, close the connection; the server
  never sees it;
- `Fault.drop_after_forward()`: forward it, read the server's whole answer, then close the
  client's connection without a byte: the server applied the request, the client never
  hears so (what idempotency must survive);
- `Fault.status(code, retry_after=None)`: answer `code` (500, 502, 503...) itself;
- `Fault.throttle(retry_after)`: answer 429 with `Retry-After`;
- `Fault.delay(seconds)`: forward, then hold the answer back `seconds` (the server has
  applied it by then: a client with a shorter timeout gives up on a done request).

`fail_next(count, fault, path=..., method=...)` scripts the next `count` requests whose
target (path and query) matches the regex `path` (searched, not anchored); rules are tried
in the order they were added, the first one with requests left wins; `count=None` means
every matching request until `clear()`.

Requests arrive with `Content-Length` or chunked bodies (relayed as they came, chunk by
chunk, in 1 MiB pieces at most, so a body of any size streams through), with
`Expect: 100-continue` (answered by the proxy), on keep-alive connections. Each request
goes upstream on a fresh connection with `Connection: close` and, unless
`rewrite_host=False`, a `Host` header naming the upstream (MLflow refuses requests for
other hosts; a server that checks signatures over `Host`, like S3's SigV4, needs the
client's). `seen` and `forwarded` count requests per path (without the query); `records`
lists every request with the fault applied to it.

Threads are named `faulty-proxy:<port>...`; `stop()` (or leaving the `with` block) closes
every connection and joins them all.
"""

from __future__ import annotations

import collections
import contextlib
import http
import re
import socket
import threading
from collections.abc import Callable
from typing import BinaryIO
from urllib.parse import urlsplit

import attrs

__all__ = ["Fault", "FaultyProxy", "Record"]

_PIECE = 2**20  # largest slice of a body held in memory
_MAX_LINE = 65536
_MAX_HEADERS = 200
_UPSTREAM_TIMEOUT = 120.0
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "expect", "te", "upgrade", "trailer"}
)
_INJECTED_BODY = b"injected by faulty-proxy\n"


@attrs.frozen
class Fault:
    """What the proxy does with one request; build one with the classmethods.

    `kind` is the name of the classmethod that built it ("passthrough",
    "drop_before_forward", "drop_after_forward", "status", "delay"), except that
    `throttle` builds a "status" fault with code 429.
    """

    kind: str
    code: int | None = None
    retry_after: float | None = None
    seconds: float = 0.0

    @classmethod
    def passthrough(cls) -> Fault:
        """Forward the request and relay the answer."""
        return cls("passthrough")

    @classmethod
    def drop_before_forward(cls) -> Fault:
        """Read the request, then close the connection; the server never sees it."""
        return cls("drop_before_forward")

    @classmethod
    def drop_after_forward(cls) -> Fault:
        """Forward the request, wait for the answer, then close without relaying it."""
        return cls("drop_after_forward")

    @classmethod
    def status(cls, code: int, *, retry_after: float | None = None) -> Fault:
        """Answer `code` without forwarding, with `Retry-After` if given."""
        return cls("status", code=code, retry_after=retry_after)

    @classmethod
    def throttle(cls, retry_after: float) -> Fault:
        """Answer 429 Too Many Requests with `Retry-After: retry_after`."""
        return cls("status", code=429, retry_after=retry_after)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Forward the request, then hold the answer back for `seconds`."""
        return cls("delay", seconds=seconds)


@attrs.frozen
class Record:
    """One request the proxy received: what it was, what was done, whether it went on."""

    method: str
    target: str
    fault: Fault
    forwarded: bool


@attrs.define
class _Rule:
    pattern: re.Pattern[str]
    method: str | None
    remaining: int | None
    fault: Fault


class _BadRequest(Exception):
    """The client sent something that is not HTTP/1.1: answer 400 and close."""


class FaultyProxy:
    """A running proxy; use `FaultyProxy.start(upstream)` and `stop()` (or `with`)."""

    def __init__(
        self, listener: socket.socket, upstream: tuple[str, int], *, rewrite_host: bool, name: str
    ) -> None:
        self._listener = listener
        self._upstream = upstream
        self._rewrite_host = rewrite_host
        port = listener.getsockname()[1]
        self._name = f"{name}:{port}"
        self.url = f"http://127.0.0.1:{port}"
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._rules: list[_Rule] = []
        self._records: list[Record] = []
        self._seen: collections.Counter[str] = collections.Counter()
        self._forwarded: collections.Counter[str] = collections.Counter()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._connections = 0
        self._acceptor = threading.Thread(target=self._accept, name=self._name)

    @classmethod
    def start(
        cls, upstream: str, *, rewrite_host: bool = True, name: str = "faulty-proxy"
    ) -> FaultyProxy:
        """Listen on a free loopback port and forward to `upstream` (`http://host:port`).

        Args:
            upstream: the server's base URL; only its host and port are used.
            rewrite_host: send `Host: <upstream host:port>` instead of the client's.
            name: the prefix of the proxy's thread names.

        Example: `with FaultyProxy.start(server.url) as proxy: requests.get(proxy.url)`
        """
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.5)  # the accept loop looks at the stop flag this often
        upstream_address = (parts.hostname, parts.port or 80)
        proxy = cls(listener, upstream_address, rewrite_host=rewrite_host, name=name)
        proxy._acceptor.start()
        return proxy

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------

    def fail_next(
        self, count: int | None, fault: Fault, *, path: str = "", method: str | None = None
    ) -> None:
        """Apply `fault` to the next `count` requests (None: all) whose target matches.

        Args:
            count: how many matching requests get the fault; None for all until `clear()`.
            fault: what to do with them.
            path: a regex searched in the request target (path and query); "" matches all.
            method: only requests with this method (`"PUT"`), any if None.
        """
        if count is not None and count < 1:
            raise ValueError(f"count must be at least 1 or None, not {count}")
        rule = _Rule(re.compile(path), method.upper() if method else None, count, fault)
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """Forget every rule: from now on requests pass."""
        with self._lock:
            self._rules.clear()

    # -- what happened -----------------------------------------------------------------

    @property
    def seen(self) -> collections.Counter[str]:
        """Requests received, per path (without the query); a copy."""
        with self._lock:
            return collections.Counter(self._seen)

    @property
    def forwarded(self) -> collections.Counter[str]:
        """Requests sent on to the upstream in full, per path; a copy."""
        with self._lock:
            return collections.Counter(self._forwarded)

    @property
    def records(self) -> list[Record]:
        """Every request received, in order, with its fault; a copy."""
        with self._lock:
            return list(self._records)

    @property
    def connections(self) -> int:
        """Client connections accepted so far (keep-alive reuses one)."""
        with self._lock:
            return self._connections

    # -- lifecycle ---------------------------------------------------------------------

    def stop(self, *, timeout: float = 5.0) -> None:
        """Close the listener and every connection, and join every thread; idempotent.

        Raises:
            RuntimeError: a thread of the proxy did not end within `timeout` seconds.
        """
        self._stopping.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in (self._listener, *sockets):
            with contextlib.suppress(OSError):  # not connected, or already closed
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on it
        if self._acceptor.is_alive():
            self._acceptor.join(timeout)
        self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        alive = [t.name for t in (self._acceptor, *threads) if t.is_alive()]
        if alive:
            raise RuntimeError(f"faulty proxy threads outlived stop(): {alive}")

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was shut down
            client.settimeout(None)
            with self._lock:
                if self._stopping.is_set():
                    client.close()
                    return
                self._connections += 1
                self._sockets.add(client)
                thread = threading.Thread(
                    target=self._serve, args=(client,), name=f"{self._name}-{self._connections}"
                )
                self._threads.append(thread)
            thread.start()

    # -- one client connection -----------------------------------------------------------

    def _serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb", buffering=_PIECE)
        try:
            while not self._stopping.is_set():
                try:
                    keep_alive = self._exchange(client, reader)
                except _BadRequest as exc:
                    _send_status(client, 400, close=True, body=f"{exc}\n".encode())
                    return
                if not keep_alive:
                    return
        except OSError:
            return  # the client went away, or stop() shut the socket
        finally:
            reader.close()
            self._forget(client)

    def _exchange(self, client: socket.socket, reader: BinaryIO) -> bool:
        """Serve one request; return whether the connection stays open."""
        head = _read_head(reader)
        if head is None:
            return False
        start, headers = head
        try:
            method, target, version = start.split(" ")
        except ValueError:
            raise _BadRequest(f"bad request line {start!r}") from None
        fields = _fields(headers)
        keep_alive = _keeps_alive(version, fields.get("connection", ""))
        fault = self._fault_for(method, target)
        path = urlsplit(target).path
        number = self._receive(method, target, fault, path)
        if "100-continue" in fields.get("expect", "").lower():
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = _body_copier(reader, fields)

        if fault.kind == "drop_before_forward":
            body(None)
            return False
        if fault.kind == "status":
            body(None)
            assert fault.code is not None
            _send_status(
                client,
                fault.code,
                close=not keep_alive,
                retry_after=fault.retry_after,
                head_only=method.upper() == "HEAD",
            )
            return keep_alive

        try:
            upstream = socket.create_connection(self._upstream, timeout=_UPSTREAM_TIMEOUT)
        except OSError as exc:
            body(None)
            _send_status(client, 502, close=not keep_alive, body=f"upstream: {exc}\n".encode())
            return keep_alive
        self._track(upstream)
        try:
            upstream.sendall(self._upstream_head(start, headers))
            body(upstream.sendall)
            self._mark_forwarded(number, path)
            answer = upstream.makefile("rb", buffering=_PIECE)
            try:
                status_line, response_headers = _read_response_head(answer)
                copy, framed = _response_copier(answer, method, status_line, response_headers)
                if fault.kind == "drop_after_forward":
                    copy(None)  # the whole answer: the server is done with the request
                    return False
                if fault.kind == "delay" and self._stopping.wait(fault.seconds):
                    return False
                # A body that ends when the upstream closes ends the client's connection too.
                close = not keep_alive or not framed
                client.sendall(_response_head(status_line, response_headers, close=close))
                copy(client.sendall)
                return not close
            finally:
                answer.close()
        finally:
            self._forget(upstream)

    def _upstream_head(self, start: str, headers: list[tuple[str, str]]) -> bytes:
        lines = [start]
        for name, value in headers:
            lowered = name.lower()
            if lowered in _HOP_BY_HOP:
                continue
            if lowered == "host" and self._rewrite_host:
                value = f"{self._upstream[0]}:{self._upstream[1]}"
            lines.append(f"{name}: {value}")
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _fault_for(self, method: str, target: str) -> Fault:
        with self._lock:
            for rule in self._rules:
                if rule.method not in (None, method.upper()) or not rule.pattern.search(target):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                return rule.fault
        return Fault.passthrough()

    def _receive(self, method: str, target: str, fault: Fault, path: str) -> int:
        """Record a request; return its index in `records`."""
        with self._lock:
            self._records.append(Record(method, target, fault, forwarded=False))
            self._seen[path] += 1
            return len(self._records) - 1

    def _mark_forwarded(self, number: int, path: str) -> None:
        with self._lock:
            self._records[number] = attrs.evolve(self._records[number], forwarded=True)
            self._forwarded[path] += 1

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
        if self._stopping.is_set():  # stop() began before it was tracked
            sock.close()
            raise OSError("proxy stopping")

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        sock.close()


# -- HTTP/1.1 framing -------------------------------------------------------------------

Sink = Callable[[bytes], object] | None


def _read_line(reader: BinaryIO) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise _BadRequest("line too long")
    return line


def _read_head(reader: BinaryIO) -> tuple[str, list[tuple[str, str]]] | None:
    """The start line and headers, or None if the peer closed before sending any."""
    start = _read_line(reader)
    while start in (b"\r\n", b"\n"):  # RFC 9112 2.2: ignore empty lines before a request
        start = _read_line(reader)
    if not start:
        return None
    if not start.endswith(b"\n"):
        raise ConnectionError("connection closed inside a message head")
    headers: list[tuple[str, str]] = []
    while True:
        line = _read_line(reader)
        if not line.endswith(b"\n"):
            raise ConnectionError("connection closed inside a message head")
        if line in (b"\r\n", b"\n"):
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or len(headers) >= _MAX_HEADERS:
            raise _BadRequest(f"bad header line {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return start.decode("latin-1").rstrip("\r\n"), headers


def _read_response_head(reader: BinaryIO) -> tuple[str, list[tuple[str, str]]]:
    """The final response's head, skipping any 1xx interim responses."""
    while True:
        head = _read_head(reader)
        if head is None:
            raise ConnectionError("upstream closed without answering")
        if _status_of(head[0]) // 100 != 1:
            return head


def _status_of(status_line: str) -> int:
    try:
        return int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError):
        raise ConnectionError(f"bad status line from upstream {status_line!r}") from None


def _fields(headers: list[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields


def _keeps_alive(version: str, connection: str) -> bool:
    tokens = {token.strip().lower() for token in connection.split(",")}
    if version == "HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens


def _body_copier(reader: BinaryIO, fields: dict[str, str]) -> Callable[[Sink], None]:
    """A function that reads the request body and passes it to a sink (None: drop it)."""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return lambda sink: _copy_chunked(reader, sink)
    length = fields.get("content-length")
    if length is None:
        return lambda sink: None
    try:
        size = int(length)
    except ValueError:
        raise _BadRequest(f"bad Content-Length {length!r}") from None
    if size < 0:
        raise _BadRequest(f"bad Content-Length {length!r}")
    return lambda sink: _copy_exact(reader, size, sink)


def _until_close(reader: BinaryIO, sink: Sink) -> None:
    """Copy a body that ends when the upstream closes its connection."""
    while piece := reader.read1(_PIECE):
        if sink is not None:
            sink(piece)


def _response_copier(
    reader: BinaryIO, method: str, status_line: str, headers: list[tuple[str, str]]
) -> tuple[Callable[[Sink], None], bool]:
    """A function that copies the response body to a sink, and whether it is framed."""
    status = _status_of(status_line)
    if method.upper() == "HEAD" or status in (204, 304):
        return (lambda sink: None), True
    fields = _fields(headers)
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return (lambda sink: _copy_chunked(reader, sink)), True
    if "content-length" in fields:
        try:
            size = int(fields["content-length"])
        except ValueError:
            raise ConnectionError(f"bad Content-Length from upstream {fields!r}") from None
        return (lambda sink: _copy_exact(reader, size, sink)), True
    return (lambda sink: _until_close(reader, sink)), False


def _copy_exact(reader: BinaryIO, size: int, sink: Sink) -> None:
    buffer = memoryview(bytearray(min(size, _PIECE)))
    left = size
    while left:
        got = reader.readinto(buffer[: min(left, _PIECE)])
        if not got:
            raise ConnectionError(f"connection closed {left} bytes before the body's end")
        if sink is not None:
            sink(buffer[:got])
        left -= got


def _copy_chunked(reader: BinaryIO, sink: Sink) -> None:
    """Copy a chunked body verbatim (sizes, extensions, trailers), chunk by chunk."""
    while True:
        line = _read_line(reader)
        if not line.endswith(b"\n"):
            raise ConnectionError("connection closed inside a chunked body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _BadRequest(f"bad chunk size line {line[:40]!r}") from None
        if sink is not None:
            sink(line)
        if size == 0:
            while True:  # trailers, up to the empty line
                trailer = _read_line(reader)
                if sink is not None:
                    sink(trailer)
                if trailer in (b"\r\n", b"\n", b""):
                    return
        _copy_exact(reader, size, sink)
        end = _read_line(reader)
        if end not in (b"\r\n", b"\n"):
            raise _BadRequest("chunk data not followed by CRLF")
        if sink is not None:
            sink(end)


def _response_head(status_line: str, headers: list[tuple[str, str]], *, close: bool) -> bytes:
    lines = [status_line]
    lines += [f"{n}: {v}" for n, v in headers if n.lower() not in ("connection", "keep-alive")]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _send_status(
    client: socket.socket,
    status: int,
    *,
    close: bool,
    retry_after: float | None = None,
    body: bytes = _INJECTED_BODY,
    head_only: bool = False,
) -> None:
    """Answer `status` from the proxy itself (to a HEAD request: the head alone)."""
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Injected"
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
    ]
    if retry_after is not None:
        seconds = int(retry_after) if float(retry_after).is_integer() else retry_after
        lines.append(f"Retry-After: {seconds}")
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    client.sendall(head if head_only else head + body)
