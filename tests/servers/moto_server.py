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
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import requests

from .process import ServerProcess, request

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


class MotoServer(ServerProcess):
    """One running `moto_server` with auth on; `start()` returns once it checks auth.

    Example: `server = MotoServer.start(tmp_path); server.create_bucket("b"); server.stop()`
    """

    name = "moto_server"
    venv_name = "moto"
    requirements = MOTO_REQUIREMENTS
    health_path = "/moto-api/"

    def __init__(self, process: subprocess.Popen[bytes], *, url: str, directory: Path) -> None:
        super().__init__(process, url=url, directory=directory)
        self._session: Any = None  # one botocore session: each costs its JSON models
        self.writer = S3Credentials("", "")
        self.denied = S3Credentials("", "")

    @classmethod
    def _argv(cls, venv: Path, directory: Path, port: int) -> list[str]:
        return [str(venv / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]

    @classmethod
    def _environment(cls, directory: Path, environ: Mapping[str, str]) -> dict[str, str]:
        # Nothing of the caller's AWS or moto configuration leaks in.
        return {
            k: v
            for k, v in environ.items()
            if not k.startswith(("AWS_", "MOTO_")) and k != "INITIAL_NO_AUTH_ACTION_COUNT"
        }

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

    def _client(self, service: str, credentials: S3Credentials) -> Any:
        import botocore.config
        import botocore.session

        if self._session is None:
            self._session = botocore.session.Session()
            # Only what is passed here: not the developer's ~/.aws, AWS_PROFILE or AWS_*
            # keys (a profile named explicitly must exist, hence a file with an empty one).
            config = str(self.directory / "aws-config")
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

    def _after_start(self) -> None:
        """Create the IAM users, then turn auth on: before that, any key is accepted."""
        # An empty default profile for the helpers' clients (see `_client`).
        (self.directory / "aws-config").write_text("[default]\n")
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
        with requests.Session() as session:
            url = f"{self._url}/moto-api/reset-auth"
            request(session, "POST", url, data=b"0", timeout=10).raise_for_status()
