"""A real MLflow tracking server for the tests, from its own cached virtualenv.

It listens on a free loopback port, keeps its SQLite store, its proxied artifacts, its
log and its temporary files under one directory the test owns, and runs in a process
group of its own (`mlflow server` forks uvicorn), which `stop()` ends as a whole.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from .venvs import ensure_venv

# mlflow 3.18.0 is on the index, but its pinned mlflow-skinny==3.18.0 and
# mlflow-tracing==3.18.0 are not yet, so it cannot install; 3.17.2 is the newest whole set.
# mlflow-skinny plus the server's extras was tried: `mlflow server` then needs pandas and
# aiohttp too (its genai job modules), so the full package is the one that works.
MLFLOW_REQUIREMENTS = ("mlflow==3.17.2",)


class ServerStartError(RuntimeError):
    """The server exited or did not answer `/health` in time; the message has its log."""


class MlflowServer:
    """One running `mlflow server`; use `MlflowServer.start(...)`, then `stop()`."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self._process, self._url, self._log = process, url, log

    @classmethod
    def start(
        cls,
        directory: Path,
        *,
        venv: Path | None = None,
        timeout: float = 120.0,
        environ: dict[str, str] | None = None,
    ) -> MlflowServer:
        """Start a server keeping all its files in `directory`; return once it answers.

        Args:
            directory: an empty directory the caller owns (a pytest tmp dir).
            venv: a venv with mlflow installed; by default the cached one of
                `MLFLOW_REQUIREMENTS`, built on first use (about two minutes).
            timeout: seconds to wait for `/health`.
            environ: the environment to start from (default `os.environ`).

        Raises:
            ServerStartError: it exited or stayed silent; its log tail is in the message.

        Example: `server = MlflowServer.start(tmp_path); ...; server.stop()`
        """
        venv = venv or ensure_venv("mlflow", MLFLOW_REQUIREMENTS)
        # A port found free can be taken before the server binds it: try again then.
        for attempt in range(3):
            server = cls._spawn(venv, directory, environ or dict(os.environ))
            try:
                server._wait_ready(timeout)
            except ServerStartError:
                server.stop()
                if attempt < 2 and "address already in use" in server.log_tail().lower():
                    continue
                raise
            return server
        raise AssertionError("unreachable")

    @classmethod
    def _spawn(cls, venv: Path, directory: Path, environ: dict[str, str]) -> MlflowServer:
        port = _free_port()
        tmp = directory / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in environ.items() if not k.startswith("MLFLOW_")}
        env.update(
            # The job runner (genai scorers) forks a runner and six huey consumers and
            # leaves a queue directory in /dev/shm; the tracking API needs none of it.
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
            TMPDIR=str(tmp),
            PYTHONUNBUFFERED="1",
        )
        argv = [
            str(venv / "bin" / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{directory / 'mlflow.db'}",
            "--artifacts-destination",
            str(directory / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        log = directory / "server.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv,
                cwd=directory,  # anything written to ./mlruns or ./mlartifacts stays here
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(process, f"http://127.0.0.1:{port}", log)

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:41234` (REST under `/api/2.0/mlflow`)."""
        return self._url

    @property
    def pgid(self) -> int:
        """The server's process group (its leader is `mlflow server`)."""
        return self._process.pid

    @property
    def log(self) -> Path:
        """The server's combined stdout and stderr."""
        return self._log

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the server's log."""
        try:
            text = self._log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, *, grace: float = 10.0) -> None:
        """End the whole process group: SIGTERM, then SIGKILL after `grace` seconds.

        Idempotent. Raises RuntimeError if a process of the group survives SIGKILL.
        """
        if group_alive(self.pgid):
            _signal_group(self.pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while group_alive(self.pgid) and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.05)
            if group_alive(self.pgid):
                _signal_group(self.pgid, signal.SIGKILL)
        self._process.wait(timeout=grace)
        deadline = time.monotonic() + grace
        while group_alive(self.pgid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"process group {self.pgid} survived SIGKILL")
            time.sleep(0.05)

    def _reap(self) -> None:
        # A zombie leader still counts as a member for kill(); reap it as soon as it exits.
        self._process.poll()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with requests.Session() as session:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise ServerStartError(
                        f"mlflow server exited {code} before answering; log tail:\n"
                        f"{self.log_tail()}"
                    )
                try:
                    if session.get(f"{self._url}/health", timeout=2).status_code == 200:
                        return
                except (requests.ConnectionError, requests.Timeout):
                    pass  # not listening yet, or busy migrating the store
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"mlflow server at {self._url} not ready after {timeout:.0f}s; "
                        f"log tail:\n{self.log_tail()}"
                    )
                time.sleep(0.1)


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


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pgid, signum)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
