"""`PolyaxonBackend`'s failures: the error class for each HTTP status and transport
failure, and no credential in any message or repr. `responses` plays the server for the
shapes a real one will not produce on demand (429, 5xx, malformed bodies); refused
connections and timeouts are real sockets."""

from __future__ import annotations

import email.utils
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import responses

from polytrack.errors import (
    BackendAuthError,
    BackendConfigError,
    BackendError,
    BackendRejectedError,
    BackendUnavailableError,
)
from polytrack.models import ParamsSet, RunStarted
from polytrack.sync.backends.base import Batch, Series
from polytrack.sync.backends.polyaxon import PolyaxonBackend, run_uuid
from polytrack.sync.backends.registry import open_backend

URI = "polyaxon+http://polyaxon.test:8000/acme/mnist"
API = "http://polyaxon.test:8000/api/v1/acme/mnist"
RUN = f"{API}/runs/{run_uuid('acme', 'mnist', 'r1')}"
UPLOAD = (
    "http://polyaxon.test:8000/streams/v1/polyaxon/acme/mnist/runs/"
    f"{run_uuid('acme', 'mnist', 'r1')}/artifact"
)
TOKEN = "tok-5ecret-9f2c"
STARTED = RunStarted(
    id="r1", project="mnist", name="r1", created_at=1.7e9, host="h", pid=1, process_started=0.0
)
PARAMS = Batch(0, (ParamsSet({"lr": 0.1}),))


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as requests_mock:
        yield requests_mock


def opened(mock: responses.RequestsMock, tmp_path: Path, **options: float) -> PolyaxonBackend:
    """A backend (token from the environment) whose run r1 exists on the server."""
    mock.get(RUN, json={"uuid": "x"})
    backend = PolyaxonBackend.from_uri(URI, environ={"POLYAXON_AUTH_TOKEN": TOKEN}, **options)
    backend.open_run(STARTED, workdir=tmp_path)
    return backend


def shown(error: BaseException, backend: PolyaxonBackend) -> str:
    return " ".join([str(error), repr(error), repr(backend), backend.key])


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, BackendAuthError),
        (403, BackendAuthError),
        (400, BackendRejectedError),
        (404, BackendRejectedError),
        (409, BackendRejectedError),
        (429, BackendUnavailableError),
        (500, BackendUnavailableError),
        (502, BackendUnavailableError),
        (503, BackendUnavailableError),
    ],
)
def test_statuses_map_to_error_classes(
    mock: responses.RequestsMock, tmp_path: Path, status: int, expected: type[BackendError]
) -> None:
    """401/403 are auth errors, 429 and 5xx unavailable, other 4xx rejections; each
    names the request and keeps the status, and never shows the token."""
    backend = opened(mock, tmp_path)
    mock.patch(RUN, status=status, json={"detail": "the server's reason"})

    with pytest.raises(BackendError) as caught:
        backend.write("r1", PARAMS)

    assert type(caught.value) is expected
    assert caught.value.status == status
    assert str(caught.value).startswith(f"PATCH {RUN}: {status} ")
    assert str(caught.value).endswith(": the server's reason")
    assert TOKEN not in shown(caught.value, backend)
    assert mock.calls[-1].request.headers["Authorization"] == f"Token {TOKEN}"


def test_retry_after_in_seconds_or_as_a_date(mock: responses.RequestsMock, tmp_path: Path) -> None:
    """Retry-After is read as seconds, or as an HTTP date counted from now."""
    backend = opened(mock, tmp_path)
    mock.patch(RUN, status=429, headers={"Retry-After": "7"})
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    mock.patch(RUN, status=503, headers={"Retry-After": later})
    mock.patch(RUN, status=503)

    errors = []
    for _ in range(3):
        with pytest.raises(BackendUnavailableError) as caught:
            backend.write("r1", PARAMS)
        errors.append(caught.value.retry_after)

    assert errors[0] == 7.0
    assert errors[1] is not None and 25 < errors[1] <= 30
    assert errors[2] is None


def test_rejection_quotes_field_errors(mock: responses.RequestsMock, tmp_path: Path) -> None:
    """A 400 with DRF field errors is rejected with the fields and their messages."""
    backend = opened(mock, tmp_path)
    mock.patch(RUN, status=400, json={"inputs": ["Value must be valid JSON."], "tags": ["Bad."]})

    with pytest.raises(BackendRejectedError) as caught:
        backend.write("r1", PARAMS)

    assert str(caught.value).endswith(": inputs: Value must be valid JSON.; tags: Bad.")


def test_a_malformed_answer_is_unavailable(mock: responses.RequestsMock, tmp_path: Path) -> None:
    """A 200 whose body is not JSON (a proxy's page) is worth retrying, not trusting."""
    mock.get(RUN, status=200, body="<html>login</html>", content_type="text/html")
    backend = PolyaxonBackend.from_uri(URI, environ={})

    with pytest.raises(BackendUnavailableError, match="not the JSON expected"):
        backend.open_run(STARTED, workdir=tmp_path)
    backend.close()


def test_a_bare_405_is_the_server_failing(mock: responses.RequestsMock, tmp_path: Path) -> None:
    """Polyaxon answers an internal error on a POST/PATCH with an empty 405: unavailable;
    a 405 that says why is a rejection."""
    backend = opened(mock, tmp_path)
    mock.patch(RUN, status=405, body=b"", headers={"Allow": "GET, HEAD, OPTIONS"})
    mock.patch(RUN, status=405, json={"detail": 'Method "PATCH" not allowed.'})

    with pytest.raises(BackendUnavailableError, match="internal error"):
        backend.write("r1", PARAMS)
    with pytest.raises(BackendRejectedError, match="not allowed"):
        backend.write("r1", PARAMS)


def test_a_failed_upload_stays_staged(mock: responses.RequestsMock, tmp_path: Path) -> None:
    """An event-file upload that fails raises, and the points go with the next one."""
    backend = opened(mock, tmp_path, upload_interval=3600)
    steps = np.arange(3, dtype=np.int64)
    batch = Batch(0, metrics=(Series("loss", steps, steps * 0.5, 1.7e9 + steps),))
    backend.write("r1", batch)  # staged; no upload due yet
    mock.post(UPLOAD, status=502)
    mock.post(UPLOAD, status=200)

    with pytest.raises(BackendUnavailableError):
        backend.close()
    second = opened(mock, tmp_path)  # a new process: uploads on open

    body = b"".join(mock.calls[-1].request.body)
    assert b'filename="loss.plx"' in body
    assert b"step|timestamp|metric\n0|2023-11-14 22:13:20.000000+00:00|0.0\n" in body
    assert b"\n2|2023-11-14 22:13:22.000000+00:00|1.0\r\n" in body
    second.close()  # nothing left to upload


def test_a_refused_record_keeps_the_batch_points(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    """When the server refuses a batch's params, its points are staged all the same (and
    uploaded later); the refusal is raised, and a repeat of the batch is not re-sent."""
    backend = opened(mock, tmp_path, upload_interval=3600)
    steps = np.arange(2, dtype=np.int64)
    batch = Batch(0, PARAMS.events, (Series("loss", steps, steps + 0.5, 1.7e9 + steps),))
    mock.patch(RUN, status=400, json={"inputs": ["Too large."]})
    uploaded: list[bytes] = []

    def receive(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        uploaded.append(b"".join(request.body))
        return 200, {}, b""

    mock.add_callback(responses.POST, UPLOAD, callback=receive)

    with pytest.raises(BackendRejectedError, match="Too large"):
        backend.write("r1", batch)
    backend.write("r1", batch)  # applied already: no second PATCH
    backend.close()

    assert [call.request.method for call in mock.calls] == ["GET", "PATCH", "POST"]
    assert b"\n1|2023-11-14 22:13:21.000000+00:00|1.5\r\n" in uploaded[0]


def test_refused_connection_is_unavailable(tmp_path: Path) -> None:
    """Nobody listening: unavailable, without an HTTP status or the password."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = PolyaxonBackend.from_uri(
        f"polyaxon+http://bob:hunter2@127.0.0.1:{port}/acme/mnist", environ={}
    )

    with pytest.raises(BackendUnavailableError, match="cannot connect") as caught:
        backend.open_run(STARTED, workdir=tmp_path)

    assert caught.value.status is None
    assert "hunter2" not in shown(caught.value, backend)
    backend.close()


def test_a_silent_server_times_out(tmp_path: Path) -> None:
    """A server that accepts and never answers: unavailable once the read timeout passes."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        backend = PolyaxonBackend(
            f"http://127.0.0.1:{port}", "acme", "mnist", token=TOKEN, timeout=(2.0, 0.2)
        )
        with pytest.raises(BackendUnavailableError, match="timed out") as caught:
            backend.open_run(STARTED, workdir=tmp_path)
        backend.close()

    assert TOKEN not in shown(caught.value, backend)


def test_uris_name_server_owner_project_and_options() -> None:
    """The registry builds the backend from its URI; a path prefix, a token from the
    config variables, and options are taken; bad shapes are config errors."""
    backend = open_backend(
        "polyaxon+https://user:pw@ml.test:8443/polyaxon/acme/mnist?namespace=ml",
        environ={"POLYTRACK_BACKEND_TOKEN": TOKEN},
    )
    assert isinstance(backend, PolyaxonBackend)
    assert backend.key == "polyaxon+https://ml.test:8443/polyaxon/acme/mnist"
    assert (
        repr(backend)
        == "<PolyaxonBackend polyaxon+https://ml.test:8443/polyaxon/acme/mnist: 0 runs>"
    )
    backend.close()
    with pytest.raises(BackendConfigError, match="names no project"):
        PolyaxonBackend.from_uri("polyaxon+http://ml.test/acme", environ={})
    with pytest.raises(BackendConfigError, match="unknown option"):
        PolyaxonBackend.from_uri("polyaxon+http://ml.test/a/b?colour=red", environ={})
    with pytest.raises(BackendConfigError, match="upload_interval"):
        PolyaxonBackend.from_uri("polyaxon+http://ml.test/a/b?upload_interval=soon", environ={})
    with pytest.raises(BackendConfigError, match="port") as caught:
        PolyaxonBackend.from_uri("polyaxon+http://bob:hunter2@ml.test:80x/a/b", environ={})
    assert "hunter2" not in str(caught.value)


def test_closed_backend_refuses_calls(tmp_path: Path) -> None:
    """After close() (which may be repeated) every call is a rejection."""
    backend = PolyaxonBackend.from_uri(URI, environ={})
    backend.close()
    backend.close()
    with pytest.raises(BackendRejectedError, match="closed"):
        backend.write("r1", PARAMS)
