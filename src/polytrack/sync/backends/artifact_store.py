"""Artifact stores: a run's files in an fsspec URL (`s3://`, `gs://`, `az://`, `file://`).

Instead of a server's own artifact endpoints, a backend's artifacts can go to an object
store named by a URL (`artifact_store` in the config file, `POLYTRACK_ARTIFACT_STORE`).
The sync engine calls `put(run_id, artifact)` for each file; the layout is

```
<url>/<run_id>/<artifact.name>             the file's bytes
<url>/<run_id>/.sha256/<artifact.name>     "<hex>  <name>\\n", stores without metadata only
```
An object carries its SHA-256 so that a repeat costs one request and moves no bytes: on S3
as user metadata (`x-amz-meta-sha256`, set in the same request that creates the object);
elsewhere in a sidecar under `.sha256/`, written after the object and removed before it is
replaced, so that only a complete object is ever claimed (from `<run_id>/`,
`sha256sum -c .sha256/<name>` checks a file). An object whose size and recorded digest
match is skipped; anything else is uploaded again.

The bytes are hashed as they are sent, and compared with the artifact's digest before the
object is committed: a file that changed since it was hashed is refused
(`BackendRejectedError`), its multipart upload aborted, so no object claims a digest its
bytes do not have. (That is the read-back check's guarantee without reading the object
back; botocore's per-request checksums cover the bytes in transit.) Files smaller than
`block_size` go up in one request; larger ones in parts of `block_size` (S3 multipart),
never read whole into memory.

fsspec and the store's own package (`s3fs`, `gcsfs`, `adlfs`) are optional: `pip install
'polytrack[s3]'`. Credentials come from where that package looks (for S3 the `AWS_*`
variables, `~/.aws`, instance roles), from the `environ` given to `open_artifact_store`,
and from `storage_options`; they are never shown in a message or a repr.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import posixpath
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import IO, Any, Final, Protocol, runtime_checkable
from urllib.parse import urlsplit

from polytrack.errors import (
    BackendAuthError,
    BackendConfigError,
    BackendError,
    BackendRejectedError,
    BackendUnavailableError,
    PolytrackError,
)
from polytrack.redact import redact_url
from polytrack.sync.backends.base import Artifact
from polytrack.sync.backends.config import uri_key

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "SIDECAR_DIR",
    "ArtifactStore",
    "FsspecArtifactStore",
    "open_artifact_store",
]

DEFAULT_BLOCK_SIZE: Final = 16 * 2**20
"""Files at least this big go up in parts of this size (more for files over 160 GiB)."""
SIDECAR_DIR: Final = ".sha256"
"""Where stores without object metadata keep digests, inside each run's directory."""

_S3_SCHEMES: Final = frozenset({"s3", "s3a"})
_S3_MIN_PART: Final = 5 * 2**20  # S3 refuses smaller parts, the last one excepted
_MAX_PARTS: Final = 10_000  # S3's limit on the parts of one upload
_READ_SIZE: Final = 2**20
_DIGEST: Final = re.compile(r"sha256:([0-9a-f]{64})")
_INSTALL_HINT: Final = "pip install 'polytrack[s3]'"


@runtime_checkable
class ArtifactStore(Protocol):
    """Where a run's files go instead of the backend's own artifact endpoints.

    `put` is idempotent on `(run_id, artifact.name, artifact.digest)` and raises
    `BackendError`s with the same meaning as a `Backend`'s.
    """

    @property
    def key(self) -> str:
        """The store's URL without credentials (`s3://bucket/prefix`)."""

    def put(self, run_id: str, artifact: Artifact) -> str:
        """Store `artifact` as `<key>/<run_id>/<artifact.name>`; return that URL."""

    def close(self) -> None:
        """Release connections; nothing is called after it."""


def open_artifact_store(
    url: str,
    *,
    environ: Mapping[str, str],
    storage_options: Mapping[str, Any] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> ArtifactStore:
    """The artifact store at `url`, with credentials from `environ` where it has them.

    For `s3://` URLs, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    `AWS_PROFILE`, `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`) and `AWS_REGION` (else
    `AWS_DEFAULT_REGION`) in `environ` become s3fs options; `storage_options` wins over
    them, and what neither gives botocore finds as usual (`~/.aws`, instance roles).

    Args:
        url: an fsspec URL: `s3://bucket/prefix`, `gs://...`, `az://...`, `file:///dir`.
        environ: the environment to read credentials from (`os.environ`, or a test's).
        storage_options: options for the filesystem (`endpoint_url`, `key`, ...).
        block_size: part size for files at least that big (S3: 5 MiB or more).

    Raises:
        BackendConfigError: fsspec, or the package for the URL's scheme, is not
            installed, or an option is unusable.

    Example:
        >>> store = open_artifact_store("s3://ml-artifacts/runs", environ=os.environ)
        >>> store.put(run_id, artifact)
        's3://ml-artifacts/runs/<run_id>/model/weights.pt'
    """
    options = dict(storage_options or {})
    if _scheme(url) in _S3_SCHEMES:
        options = {**_s3_options(environ), **options}
    return FsspecArtifactStore(url, storage_options=options, block_size=block_size)


class FsspecArtifactStore:
    """An `ArtifactStore` over any fsspec filesystem (see the module docstring).

    Creating one connects to nothing; the first `put` does. Not safe to share between
    threads: the sync engine calls it from one.

    Example:
        >>> store = FsspecArtifactStore("file:///srv/artifacts")
        >>> store.put("3f2a...", Artifact(path, "model/weights.pt", digest, size))
        'file:///srv/artifacts/3f2a.../model/weights.pt'
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self._key = uri_key(url)
        s3 = _scheme(url) in _S3_SCHEMES
        if block_size < (_S3_MIN_PART if s3 else 1):
            raise BackendConfigError(
                f"artifact store {self._key}: block_size {block_size} is below "
                f"{_S3_MIN_PART if s3 else 1} bytes"
            )
        self._block_size = block_size
        self._fs, root = _filesystem(url, self._key, dict(storage_options or {}))
        self._root = root.rstrip("/")
        self._digests: _Digests = _S3Metadata() if s3 else _Sidecars()
        self._local = "file" in _protocols(self._fs)
        self._closed = False

    @property
    def key(self) -> str:
        """The store's URL without credentials, query or trailing slash."""
        return self._key

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self._key!r})"

    def put(self, run_id: str, artifact: Artifact) -> str:
        """Upload `artifact` unless the store holds it already; return its URL.

        Raises:
            BackendRejectedError: a bad run id, name or digest; the file is gone or no
                longer has `artifact.digest`; no such bucket; any other refusal.
            BackendAuthError: credentials missing, wrong, or not allowed to write there.
            BackendUnavailableError: unreachable, timed out, throttled, or a 5xx.
        """
        name = _checked_name(artifact.name)
        _checked_run_id(run_id)
        expected = _DIGEST.fullmatch(artifact.digest)
        if expected is None:
            raise BackendRejectedError(
                f"artifact {name}: digest {artifact.digest!r} is not sha256:<64 hex digits>"
            )
        run_dir = f"{self._root}/{run_id}"
        url = f"{self._key}/{run_id}/{name}"
        with _translated(f"upload of {url}"):
            if self._digests.recorded(self._fs, run_dir, name) == (
                artifact.size,
                expected.group(1),
            ):
                return url
            self._upload(run_dir, name, artifact, expected.group(1), url)
        return url

    def close(self) -> None:
        """Close the filesystem's connections (an s3fs session); idempotent."""
        if self._closed:
            return
        self._closed = True
        creator = getattr(self._fs, "_s3creator", None)
        if creator is not None:
            # s3fs closes its aiohttp session only in a finalizer at garbage collection,
            # giving it 0.1 s; owning the store means closing it now, and waiting for it.
            asyn = importlib.import_module("fsspec.asyn")
            with suppress(Exception):  # a store that cannot close cleanly is still closed
                asyn.sync(self._fs.loop, creator.__aexit__, None, None, None, timeout=10)

    def _upload(
        self, run_dir: str, name: str, artifact: Artifact, hexdigest: str, url: str
    ) -> None:
        path = f"{run_dir}/{name}"
        # Parts of at least size / 10,000, so that no file needs more parts than S3 allows.
        part = max(self._block_size, math.ceil(artifact.size / _MAX_PARTS))
        extra = self._digests.write_options(hexdigest)
        self._digests.forget(self._fs, run_dir, name)
        if self._local:
            self._fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with _source(artifact) as source:
            if artifact.size < part:
                # One request; what is read is at most one part, plus a byte to see growth.
                data = _read(source, artifact, artifact.size + 1)
                _check(url, artifact, len(data), hashlib.sha256(data).hexdigest())
                self._fs.pipe_file(path, data, **extra)
            else:
                self._stream(source, path, part, artifact, url, extra)
        self._digests.record(self._fs, run_dir, name, hexdigest)

    def _stream(
        self,
        source: IO[bytes],
        path: str,
        part: int,
        artifact: Artifact,
        url: str,
        extra: Mapping[str, Any],
    ) -> None:
        # autocommit=False: the parts go up as they fill, but the object appears only at
        # commit(); discard() aborts the multipart upload (or drops the temporary file).
        remote = self._fs.open(path, "wb", block_size=part, autocommit=False, **extra)
        committed = False
        try:
            digest, sent = hashlib.sha256(), 0
            while sent <= artifact.size:
                chunk = _read(source, artifact, _READ_SIZE)
                if not chunk:
                    break
                digest.update(chunk)
                remote.write(chunk)
                sent += len(chunk)
            remote.close()
            _check(url, artifact, sent, digest.hexdigest())
            remote.commit()
            committed = True
        finally:
            if not committed:
                # Best effort: a part left behind is invisible and S3 lifecycle rules
                # expire it; the error being raised is the one worth reporting.
                with suppress(Exception):
                    remote.close()
                with suppress(Exception):
                    remote.discard()


class _Digests(Protocol):
    """How a store records an object's SHA-256 beside it."""

    def recorded(self, fs: Any, run_dir: str, name: str) -> tuple[int, str] | None: ...
    def write_options(self, hexdigest: str) -> dict[str, Any]: ...
    def forget(self, fs: Any, run_dir: str, name: str) -> None: ...
    def record(self, fs: Any, run_dir: str, name: str, hexdigest: str) -> None: ...


class _S3Metadata:
    """S3 user metadata: set by the request that creates the object, so never stale."""

    def recorded(self, fs: Any, run_dir: str, name: str) -> tuple[int, str] | None:
        bucket, key, _ = fs.split_path(f"{run_dir}/{name}")
        try:
            head = fs.call_s3("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return None
        return int(head["ContentLength"]), str(head.get("Metadata", {}).get("sha256", ""))

    def write_options(self, hexdigest: str) -> dict[str, Any]:
        return {"Metadata": {"sha256": hexdigest}}

    def forget(self, fs: Any, run_dir: str, name: str) -> None:
        """Nothing to do: the new object replaces the old one with its metadata."""

    def record(self, fs: Any, run_dir: str, name: str, hexdigest: str) -> None:
        """Nothing to do: the metadata went up with the object."""


class _Sidecars:
    """`<run_dir>/.sha256/<name>`, in `sha256sum` format, written after the object."""

    def recorded(self, fs: Any, run_dir: str, name: str) -> tuple[int, str] | None:
        try:
            size = fs.size(f"{run_dir}/{name}")
            text = fs.cat_file(f"{run_dir}/{SIDECAR_DIR}/{name}")
        except FileNotFoundError:
            return None
        words = text.decode(errors="replace").split()
        return (int(size), words[0]) if size is not None and words else None

    def write_options(self, hexdigest: str) -> dict[str, Any]:
        return {}

    def forget(self, fs: Any, run_dir: str, name: str) -> None:
        # Before the object is replaced, so that the old digest never names new bytes.
        with suppress(FileNotFoundError):
            fs.rm_file(f"{run_dir}/{SIDECAR_DIR}/{name}")

    def record(self, fs: Any, run_dir: str, name: str, hexdigest: str) -> None:
        sidecar = f"{run_dir}/{SIDECAR_DIR}/{name}"
        if "file" in _protocols(fs):
            fs.makedirs(posixpath.dirname(sidecar), exist_ok=True)
        fs.pipe_file(sidecar, f"{hexdigest}  {name}\n".encode())


def _check(url: str, artifact: Artifact, size: int, hexdigest: str) -> None:
    if size == artifact.size and f"sha256:{hexdigest}" == artifact.digest:
        return
    if size > artifact.size:
        now = f"more than {artifact.size} bytes"  # reading stopped there
    elif size < artifact.size:
        now = f"{size} bytes"
    else:
        now = f"sha256:{hexdigest}"
    raise BackendRejectedError(
        f"upload of {url} refused: {artifact.path} changed since it was logged "
        f"({artifact.digest}, {artifact.size} bytes; now {now})"
    )


@contextmanager
def _source(artifact: Artifact) -> Iterator[IO[bytes]]:
    try:
        handle = open(artifact.path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise _unreadable(artifact, exc) from exc
    with handle:
        yield handle


def _read(source: IO[bytes], artifact: Artifact, size: int) -> bytes:
    # A local read failure is this machine's, not the store's: kept out of `_translate`.
    try:
        return source.read(size)
    except OSError as exc:
        raise _unreadable(artifact, exc) from exc


def _unreadable(artifact: Artifact, exc: OSError) -> BackendRejectedError:
    return BackendRejectedError(f"cannot read artifact file {artifact.path}: {exc.strerror}")


def _checked_name(name: str) -> str:
    parts = name.split("/")
    if (
        not name
        or any(part in ("", ".", "..") for part in parts)
        or "\\" in name
        or "\x00" in name
        or parts[0] == SIDECAR_DIR
    ):
        raise BackendRejectedError(
            f"artifact name {name!r} must be relative, '/'-separated, without empty, '.' "
            f"or '..' parts, and not under {SIDECAR_DIR}/"
        )
    return name


def _checked_run_id(run_id: str) -> None:
    if not run_id or run_id in (".", "..") or any(c in run_id for c in "/\\\x00"):
        raise BackendRejectedError(f"run id {run_id!r} cannot name a directory")


# Codes that mean the credentials, not the request, are at fault; S3 sends most with 403.
_AUTH_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
# 4xx codes that a retry can cure: throttling, and bodies damaged or cut short on the way.
_RETRY_CODES: Final = frozenset(
    {
        "BadDigest",
        "IncompleteBody",
        "RequestTimeout",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "XAmzContentSHA256Mismatch",
    }
)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Raise the store's failures inside as `BackendError`s (see `_translate`)."""
    try:
        yield
    except PolytrackError:
        raise
    except Exception as exc:
        if not _is_store_failure(exc):
            raise  # a bug, not a failure of the store: never hide it as retryable
        raise _translate(exc, what) from exc


def _is_store_failure(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, ValueError)):  # TimeoutError and fsspec's are OSErrors
        return True
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is not None and isinstance(exc, (botocore.BotoCoreError, botocore.ClientError)):
        return True
    aiohttp = sys.modules.get("aiohttp")
    return aiohttp is not None and isinstance(exc, aiohttp.ClientError)


def _translate(exc: BaseException, what: str) -> BackendError:
    """The one place where fsspec's, s3fs's, botocore's and OS errors become ours.

    s3fs turns botocore's `ClientError` into an `OSError` (`PermissionError` for 403s,
    `FileNotFoundError` for 404s) with the `ClientError` as its cause, so the S3 error
    code is looked for along the chain first; the exception types decide otherwise.
    """
    response = _response_of(exc)
    if response is not None:
        error = response.get("Error") or {}
        meta = response.get("ResponseMetadata") or {}
        code = str(error.get("Code") or "")
        status = meta.get("HTTPStatusCode")
        status = status if isinstance(status, int) else None
        message = redact_url(f"{what} failed: {code or status}: {error.get('Message') or exc}")
        if code in _AUTH_CODES or status in (401, 403):
            return BackendAuthError(message, status=status)
        if code in _RETRY_CODES or status is None or status == 429 or status >= 500:
            headers = meta.get("HTTPHeaders") or {}
            return BackendUnavailableError(
                message, status=status, retry_after=_seconds(headers.get("retry-after"))
            )
        return BackendRejectedError(message, status=status)
    message = redact_url(f"{what} failed: {type(exc).__name__}: {exc}")
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is not None:
        if isinstance(
            exc,
            (
                botocore.NoCredentialsError,
                botocore.PartialCredentialsError,
                botocore.CredentialRetrievalError,
            ),
        ):
            return BackendAuthError(message)
        if isinstance(exc, botocore.ParamValidationError):  # e.g. an invalid bucket name
            return BackendRejectedError(message)
    if isinstance(exc, PermissionError):
        return BackendAuthError(message)
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError)):
        return BackendRejectedError(message)
    if isinstance(exc, ValueError):
        return BackendRejectedError(message)
    return BackendUnavailableError(message)  # connection, timeout, disk full, ...


def _response_of(exc: BaseException) -> Mapping[str, Any] | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        if isinstance(response, Mapping) and "Error" in response:
            return response
        current = current.__cause__ or current.__context__
    return None


def _seconds(value: object) -> float | None:
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from object stores, and only a hint


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower() if "://" in url else ""


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _filesystem(url: str, key: str, options: dict[str, Any]) -> tuple[Any, str]:
    try:
        core = importlib.import_module("fsspec.core")
    except ImportError:
        raise BackendConfigError(
            f"artifact store {key} needs fsspec and the package for its scheme; "
            f"for S3: {_INSTALL_HINT}"
        ) from None
    # An instance of our own, not fsspec's shared one: `close()` may then close it.
    options.setdefault("skip_instance_cache", True)
    try:
        fs, root = core.url_to_fs(url, **options)
    except ImportError as exc:  # fsspec names the missing package: "Install s3fs to ..."
        hint = f"; {_INSTALL_HINT}" if _scheme(url) in _S3_SCHEMES else ""
        raise BackendConfigError(f"artifact store {key}: {exc}{hint}") from None
    except (ValueError, TypeError) as exc:  # unknown protocol, or an unknown option
        raise BackendConfigError(f"artifact store {key}: {redact_url(str(exc))}") from None
    return fs, str(root)


def _s3_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """s3fs options from the AWS variables in `environ` (botocore reads only os.environ)."""
    options: dict[str, Any] = {}
    for variable, option in (
        ("AWS_ACCESS_KEY_ID", "key"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
        ("AWS_PROFILE", "profile"),
    ):
        if environ.get(variable):
            options[option] = environ[variable]
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        options["client_kwargs"] = {"region_name": region}
    return options
