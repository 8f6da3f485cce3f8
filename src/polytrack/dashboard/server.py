"""`Dashboard`: the dashboard served by uvicorn on a thread this handle owns.

`polytrack.ui()` (a notebook) and `polytrack ui` (the command line) both start one. The
socket is bound here, before the thread starts, so that `--port 0` knows its port at
once and a port in use fails in the caller's thread with a clear error. The thread is
named `polytrack-dashboard`, stopped by `stop()` (idempotent) or at interpreter exit.
"""

from __future__ import annotations

import atexit
import html
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Final

import uvicorn

from polytrack.dashboard.app import create_app
from polytrack.dashboard.security import is_loopback, new_token
from polytrack.settings import Settings

__all__ = ["Dashboard", "ui"]

THREAD_NAME: Final = "polytrack-dashboard"
STARTUP_TIMEOUT: Final = 30.0


class Dashboard:
    """A running dashboard. Build one with `Dashboard.start` (or `polytrack.ui()`).

    Example:
        >>> with polytrack.ui(port=0) as dashboard:
        ...     print(dashboard.url)
    """

    def __init__(
        self,
        server: uvicorn.Server,
        thread: threading.Thread,
        sock: socket.socket,
        *,
        home: Path,
        url: str,
        token: str | None,
    ) -> None:
        self.home = home
        self.url = url
        self.token = token
        self._server = server
        self._thread = thread
        self._socket = sock
        self._lock = threading.Lock()
        self._stopped = False

    @classmethod
    def start(
        cls, home: str | Path | None = None, *, port: int = 0, host: str = "127.0.0.1"
    ) -> Dashboard:
        """Serve the store at `home` on `host:port` (port 0: any free one) and return
        once it answers.

        On a loopback host no token is needed; on any other, `token_url` holds the URL
        with the token a browser must open first.

        Raises:
            OSError: the address cannot be bound (the port is taken, ...), or the server
                did not start.
        """
        store = Path(home).expanduser() if home is not None else Settings.from_env().home
        loopback = is_loopback(host)
        token = None if loopback else new_token()
        sock = _bind(host, port)
        bound_port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(store, token=token, loopback=loopback),
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=THREAD_NAME, daemon=True
        )
        dashboard = cls(server, thread, sock, home=store, url=_url(host, bound_port), token=token)
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        try:
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise OSError(f"the dashboard did not start on {host}:{bound_port}")
                time.sleep(0.01)
        except BaseException:  # Ctrl-C included: no server left running
            dashboard.stop()
            raise
        atexit.register(dashboard.stop)
        return dashboard

    @property
    def token_url(self) -> str:
        """The URL to open first: with `?token=` where one is needed."""
        return self.url if self.token is None else f"{self.url}?token={self.token}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopped

    def stop(self) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        atexit.unregister(self.stop)
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<polytrack.Dashboard {self.url} {state}>"

    def _repr_html_(self) -> str:
        """Jupyter shows the dashboard itself, in a frame."""
        source = html.escape(self.token_url, quote=True)
        link = html.escape(self.url)
        return (
            f'<iframe src="{source}" width="100%" height="720" frameborder="0" '
            f'title="polytrack dashboard"></iframe>'
            f'<p>polytrack dashboard: <a href="{source}" target="_blank">{link}</a></p>'
        )


def ui(home: str | Path | None = None, *, port: int = 0, host: str = "127.0.0.1") -> Dashboard:
    """Start the dashboard in the background and return its handle; in a notebook, the
    handle shows the dashboard inline.

    Args:
        home: the store; default `POLYTRACK_HOME` or its default.
        port: the port; 0 (the default) picks a free one.
        host: the address to listen on; any but a loopback one needs the token that
            `Dashboard.token_url` carries.

    Raises:
        OSError: the server could not start (the port is taken, ...).

    Example:
        >>> dashboard = polytrack.ui()
        >>> dashboard  # in Jupyter: the dashboard
        >>> dashboard.stop()
    """
    return Dashboard.start(home, port=port, host=host)


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()  # every address: name the machine, not "0.0.0.0"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"
