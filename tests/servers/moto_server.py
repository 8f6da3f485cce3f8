"""A real S3 API (`moto_server`) for the tests, from its own cached virtualenv.

It listens on a free loopback port, in a process group of its own that `stop()` ends as a
whole, with its temporary files (large objects spill to disk) under a directory the test
owns. Like real S3 it checks every request's signature and the caller's IAM policy: at
start it creates two IAM users, `writer` (allowed `s3:*`) and `denied` (no policy), then
turns authentication on, so a wrong key, a wrong secret and a missing permission each get
the error S3 would send.

Setting it up and the helpers use botocore (installed with s3fs, the `s3` extra).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import requests

from .mlflow_server import ServerStartError, _free_port, _signal_group, group_alive
from .venvs import ensure_venv

MOTO_REQUIREMENTS = ("moto[server]==5.2.5",)
REGION = "us-east-1"
_ALLOW_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@attrs.frozen(repr=False)
class S3Credentials:
    """An IAM access key that moto issued; the secret stays out of reprs."""

    access_key: str
    secret_key: str

    def __repr__(self) -> str:
        return f"S3Credentials({self.access_key!r})"


class MotoServer:
    """One running `moto_server` with auth on; use `MotoServer.start(...)`, then `stop()`."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, directory: Path) -> None:
        self._process, self._url, self._directory = process, url, directory
        self._log = directory / "server.log"
        self._session: Any = None  # one botocore session: each costs its JSON models
        self.writer = S3Credentials("", "")
        self.denied = S3Credentials("", "")

    @classmethod
    def start(
        cls,
        directory: Path,
        *,
        venv: Path | None = None,
        timeout: float = 60.0,
        environ: Mapping[str, str] | None = None,
    ) -> MotoServer:
        """Start a server keeping its files in `directory`; return once it checks auth.

        Args:
            directory: an empty directory the caller owns (a pytest tmp dir).
            venv: a venv with moto[server]; by default the cached one of
                `MOTO_REQUIREMENTS`, built on first use (about half a minute).
            timeout: seconds to wait for it to answer.
            environ: the environment to start from (default `os.environ`).

        Raises:
            ServerStartError: it exited or stayed silent; its log tail is in the message.

        Example: `server = MotoServer.start(tmp_path); server.create_bucket("b"); server.stop()`
        """
        venv = venv or ensure_venv("moto", MOTO_REQUIREMENTS)
        # A port found free can be taken before the server binds it: try again then.
        for attempt in range(3):
            server = cls._spawn(venv, directory, dict(environ or os.environ))
            try:
                server._wait_ready(timeout)
                server._enable_auth()
            except BaseException:
                server.stop()
                if attempt < 2 and "address already in use" in server.log_tail().lower():
                    continue
                raise
            return server
        raise AssertionError("unreachable")

    @classmethod
    def _spawn(cls, venv: Path, directory: Path, environ: dict[str, str]) -> MotoServer:
        port = _free_port()
        tmp = directory / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        # Nothing of the caller's AWS or moto configuration leaks in.
        env = {
            k: v
            for k, v in environ.items()
            if not k.startswith(("AWS_", "MOTO_")) and k != "INITIAL_NO_AUTH_ACTION_COUNT"
        }
        env.update(TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
        argv = [str(venv / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
        # An empty default profile for the helpers' clients (see `_client`).
        (directory / "aws-config").write_text("[default]\n")
        with open(directory / "server.log", "ab") as out:
            process = subprocess.Popen(
                argv,
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(process, f"http://127.0.0.1:{port}", directory)

    @property
    def url(self) -> str:
        """The endpoint URL, e.g. `http://127.0.0.1:41234` (path-style buckets)."""
        return self._url

    @property
    def pgid(self) -> int:
        """The server's process group (its leader is `moto_server`)."""
        return self._process.pid

    @property
    def log(self) -> Path:
        """The server's combined stdout and stderr (one line per request)."""
        return self._log

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the server's log."""
        try:
            text = self._log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def storage_options(
        self, credentials: S3Credentials | None = None, *, endpoint: str | None = None
    ) -> dict[str, Any]:
        """s3fs options for this server (or a proxy in front of it, `endpoint`)."""
        credentials = credentials or self.writer
        return {
            "key": credentials.access_key,
            "secret": credentials.secret_key,
            "endpoint_url": endpoint or self._url,
            "client_kwargs": {"region_name": REGION},
            "config_kwargs": {"s3": {"addressing_style": "path"}},
        }

    def client(self, credentials: S3Credentials | None = None) -> Any:
        """A botocore S3 client for looking behind the store's back; close() it."""
        return self._client("s3", credentials or self.writer)

    def create_bucket(self, name: str) -> None:
        """Create bucket `name` as `writer`."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()

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

    def _client(self, service: str, credentials: S3Credentials) -> Any:
        import botocore.config
        import botocore.session

        if self._session is None:
            self._session = botocore.session.Session()
            # Only what is passed here: not the developer's ~/.aws, AWS_PROFILE or AWS_*
            # keys (a profile named explicitly must exist, hence a file with an empty one).
            config = str(self._directory / "aws-config")
            self._session.set_config_variable("config_file", config)
            self._session.set_config_variable("credentials_file", config)
            self._session.set_config_variable("profile", "default")
        return self._session.create_client(
            service,
            endpoint_url=self._url,
            region_name=REGION,
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )

    def _enable_auth(self) -> None:
        # Before auth is on, any key is accepted: create the users, then switch it on.
        iam = self._client("iam", S3Credentials("setup", "setup"))
        try:
            keys = {}
            for user in ("writer", "denied"):
                iam.create_user(UserName=user)
                key = iam.create_access_key(UserName=user)["AccessKey"]
                keys[user] = S3Credentials(key["AccessKeyId"], key["SecretAccessKey"])
            iam.put_user_policy(
                UserName="writer", PolicyName="s3", PolicyDocument=json.dumps(_ALLOW_S3)
            )
        finally:
            iam.close()
        self.writer, self.denied = keys["writer"], keys["denied"]
        # From now on every request must be signed by a known key and be allowed.
        answer = requests.post(f"{self._url}/moto-api/reset-auth", data=b"0", timeout=10)
        answer.raise_for_status()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with requests.Session() as session:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise ServerStartError(
                        f"moto_server exited {code} before answering; log tail:\n{self.log_tail()}"
                    )
                try:
                    if session.get(f"{self._url}/moto-api/", timeout=2).status_code == 200:
                        return
                except (requests.ConnectionError, requests.Timeout):
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"moto_server at {self._url} not ready after {timeout:.0f}s; "
                        f"log tail:\n{self.log_tail()}"
                    )
                time.sleep(0.1)
