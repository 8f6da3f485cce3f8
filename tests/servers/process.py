"""A real server process for the tests: started, waited for and stopped in one place.

Each server (`MlflowServer`, `MotoServer`, `PolyaxonSandbox`) subclasses `ServerProcess`
and says only what is its own: the command and environment, the health path, the round
trip of its API that proves it ready, what to do once it is. The base class runs it on a
free loopback port, in a process group of its own (servers fork workers, and `stop()` must
end them all), with its log, its temporary files and its working directory under one
directory the test owns.

Ready means ready for the tests: a health endpoint answers before the API behind it can
(a store still migrating, a first request that fails while the app warms up), so `start()`
returns only once `api_ready()`, a real request of the API the tests use, succeeded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import requests

from .venvs import ensure_venv

_ATTEMPTS = 3
# Answers that a server gives while it warms up or is busy, and that the same request
# may not get a moment later: 429, 5xx, and Polyaxon's 405 to a write (its 500 handler
# answers GET only: see `polytrack.sync.backends.polyaxon`).
_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


def transient(response: requests.Response) -> bool:
    """Whether `response` is a server's passing failure, worth the same request again."""
    if response.status_code in _RETRIED_STATUSES:
        return True
    method = response.request.method if response.request is not None else None
    return response.status_code == 405 and not response.content and method not in ("GET", "HEAD")


def request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    attempts: int = 8,
    **kwargs: Any,
) -> requests.Response:
    """`session.request`, again after a transient answer or a refused connection, with
    backoff (0.25 s doubling to 4 s: about 20 s in all); the last answer, whatever it is.

    For requests that tests make to set up and read back: their setup must not fail
    because the server had a bad moment (it is no subject of theirs).
    """
    delay = 0.25
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            response = session.request(method, url, **kwargs)
        except requests.ConnectionError:
            if last:
                raise
        else:
            if last or not transient(response):
                return response
        time.sleep(delay)
        delay = min(delay * 2, 4.0)
    raise AssertionError("unreachable")


class ServerStartError(RuntimeError):
    """The server exited or did not answer its health check in time; the message has its log."""


class ServerProcess:
    """One running server process group: `Subclass.start(directory)`, then `stop()`.

    A subclass names its `requirements` and `health_path` and builds its `_argv` and
    `_environment`; `_after_start` sets it up once it answers.
    """

    name: ClassVar[str]
    """What error messages call it, e.g. `mlflow server`."""
    venv_name: ClassVar[str]
    requirements: ClassVar[tuple[str, ...]]
    """Its cached venv's label and pinned packages (`venvs.ensure_venv`)."""
    health_path: ClassVar[str]
    """A path that answers 200 once the server process serves (not yet its API: see
    `api_ready`)."""
    # Generous: a first start migrates a database, on a CI machine that runs other jobs.
    start_timeout: ClassVar[float] = 180.0

    def __init__(self, process: subprocess.Popen[bytes], *, url: str, directory: Path) -> None:
        self._process, self._url, self._directory = process, url, directory

    @classmethod
    def start(
        cls,
        directory: Path,
        *,
        venv: Path | None = None,
        timeout: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Self:
        """Start a server keeping all its files in `directory`; return once it answers.

        A port found free can be taken before the server binds it: then it tries again on
        a new one. The log is appended to, so it keeps every attempt.

        Args:
            directory: an empty directory the caller owns (a pytest tmp dir).
            venv: a venv with the server installed; by default the cached one of
                `requirements`, built on first use (a minute or two).
            timeout: seconds to wait for `health_path`; by default `start_timeout`.
            environ: the environment to start from (default `os.environ`).

        Raises:
            ServerStartError: it exited or stayed silent; its log tail is in the message.

        Example: `server = MlflowServer.start(tmp_path); ...; server.stop()`
        """
        environ = os.environ if environ is None else environ
        venv = venv or ensure_venv(cls.venv_name, cls.requirements, environ=environ)
        tmp = directory / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env = {**cls._environment(directory, environ), "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
        for attempt in range(_ATTEMPTS):
            port = free_port()
            with open(directory / "server.log", "ab") as out:
                process = subprocess.Popen(
                    cls._argv(venv, directory, port),
                    cwd=directory,  # anything written to ./ stays in the test's directory
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            server = cls(process, url=f"http://127.0.0.1:{port}", directory=directory)
            try:
                server._wait_ready(cls.start_timeout if timeout is None else timeout)
                server._after_start()
            except BaseException as exc:
                server.stop()
                port_taken = "address already in use" in server.log_tail().lower()
                if isinstance(exc, ServerStartError) and port_taken and attempt < _ATTEMPTS - 1:
                    continue
                raise
            return server
        raise AssertionError("unreachable")

    @classmethod
    def _argv(cls, venv: Path, directory: Path, port: int) -> list[str]:
        """The command that serves on `127.0.0.1:port`, keeping its files in `directory`."""
        raise NotImplementedError(f"{cls.__name__} must say how to run its server")

    @classmethod
    def _environment(cls, directory: Path, environ: Mapping[str, str]) -> dict[str, str]:
        """The server's environment, from the caller's (all of it by default)."""
        return dict(environ)

    def _after_start(self) -> None:
        """Set the server up once it answers (nothing by default)."""

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:41234`."""
        return self._url

    @property
    def directory(self) -> Path:
        """Where the server keeps its files, its log and its temporary files."""
        return self._directory

    @property
    def pgid(self) -> int:
        """The server's process group; its leader is the server's own process."""
        return self._process.pid

    @property
    def log(self) -> Path:
        """The server's combined stdout and stderr."""
        return self._directory / "server.log"

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the server's log, for failure messages."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def health(self) -> bool:
        """Whether `health_path` answers 200."""
        try:
            return requests.get(f"{self._url}{self.health_path}", timeout=5).status_code == 200
        except requests.RequestException:
            return False  # not listening yet, or busy (a store migration)

    def api_ready(self) -> bool:
        """Whether a real request of the API that the tests use succeeds (by default,
        `health()`); called only once `health()` is true, until it returns True."""
        return self.health()

    def stop(self, *, grace: float = 10.0) -> None:
        """End the whole process group: SIGTERM, then SIGKILL after `grace` seconds.

        Idempotent. Raises RuntimeError if a process of the group survives SIGKILL.
        """
        if group_alive(self.pgid):
            _signal_group(self.pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while group_alive(self.pgid) and time.monotonic() < deadline:
                self._process.poll()  # reap a zombie leader, which kill() still counts
                time.sleep(0.05)
            if group_alive(self.pgid):
                _signal_group(self.pgid, signal.SIGKILL)
        self._process.wait(timeout=grace)
        deadline = time.monotonic() + grace
        while group_alive(self.pgid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"process group {self.pgid} survived SIGKILL")
            time.sleep(0.05)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.name} exited {code} before answering; log tail:\n{self.log_tail()}"
                )
            if self.health() and self.api_ready():
                return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{self.name} at {self._url} not ready after {timeout:.0f}s; "
                    f"log tail:\n{self.log_tail()}"
                )
            time.sleep(0.2)


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` is still running (zombies don't count).

    Orphaned children are re-parented to PID 1, which in a container may never reap
    them, so `kill(-pgid, 0)` alone would call a group of zombies alive forever.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    if not Path("/proc").is_dir():  # no way to tell zombies apart here
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command name: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def free_port() -> int:
    """A loopback port free now; racy by nature, hence `start()`'s retries."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pgid, signum)
