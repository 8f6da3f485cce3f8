"""`PolyaxonBackend` against a real Polyaxon sandbox: everything is read back through the
server's own API (runs, statuses, lineage, metric events, artifacts)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from polytrack.errors import BackendRejectedError
from polytrack.models import (
    ArtifactLogged,
    CodeState,
    DataRef,
    GitState,
    ParamsSet,
    RunStarted,
    TagsAdded,
)
from polytrack.sync.backends.base import Artifact, Backend, Batch, Series
from polytrack.sync.backends.polyaxon import PolyaxonBackend, event_name, run_uuid

from .polyaxon_sandbox import OWNER, PolyaxonSandbox

pytestmark = pytest.mark.slow

CREATED = 1_732_612_345.5
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def project() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def uri(sandbox: PolyaxonSandbox, project: str) -> str:
    return f"polyaxon+{sandbox.url}/{OWNER}/{project}"


def backend(sandbox: PolyaxonSandbox, project: str, **options: Any) -> PolyaxonBackend:
    return PolyaxonBackend.from_uri(uri(sandbox, project), environ={}, **options)


def started(run_id: str, **fields: Any) -> RunStarted:
    values: dict[str, Any] = {
        "project": "p",
        "name": "train",
        "created_at": CREATED,
        "host": "host",
        "pid": 1,
        "process_started": 0.0,
    }
    return RunStarted(id=run_id, **(values | fields))


def series(key: str, steps: Sequence[int], values: Sequence[float]) -> Series:
    steps_array = np.asarray(steps, dtype=np.int64)
    times = CREATED + steps_array * 0.25 + 0.000123
    return Series(key, steps_array, np.asarray(values, dtype=np.float64), times)


def stamp(at: float) -> str:
    return dt.datetime.fromtimestamp(at, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


def events(sandbox: PolyaxonSandbox, project: str, run_id: str, key: str) -> dict[str, list[Any]]:
    """The metric's points as the server reads them, {} when it has no such event file."""
    try:
        return sandbox.metric_events(project, run_uuid(OWNER, project, run_id), event_name(key))
    except KeyError:
        return {}


def count_runs(sandbox: PolyaxonSandbox, project: str) -> int:
    """Runs in the project; the list's default filter (`created_at: last_month`) is
    widened, since these runs were created in 2024."""
    query = {"query": "created_at:>2000-01-01"}
    return int(sandbox.api("GET", f"{OWNER}/{project}/runs", params=query)["count"])


def values_equal(got: Sequence[float | None], expected: Sequence[float]) -> bool:
    """Exact equality, a NaN or infinity being read back as null."""
    return len(got) == len(expected) and all(
        (g is None and not math.isfinite(e)) or g == e for g, e in zip(got, expected, strict=True)
    )


def test_run_is_created_once_and_found_again(
    sandbox: PolyaxonSandbox, project: str, tmp_path: Path
) -> None:
    """open_run creates project and run (name, notes, tags, times); a second instance
    finds the same run by its derived uuid instead of making another."""
    run = started("run-a", name="my first run", notes="baseline", tags=("cnn", "v1"))
    first = backend(sandbox, project)
    first.open_run(run, workdir=tmp_path / "a")
    first.close()
    second = backend(sandbox, project)
    second.open_run(run, workdir=tmp_path / "b")
    second.close()

    stored = sandbox.run(project, run_uuid(OWNER, project, "run-a"))
    assert (stored["name"], stored["description"], stored["tags"]) == (
        "my-first-run",
        "baseline",
        ["cnn", "v1"],
    )
    assert (stored["is_managed"], stored["kind"]) == (False, "job")
    assert stored["created_at"] == stored["started_at"] == "2024-11-26T09:12:25.500000Z"
    assert stored["meta_info"]["polytrack"]["run_id"] == "run-a"
    assert count_runs(sandbox, project) == 1
    assert isinstance(first, Backend)


def test_params_tags_and_snapshot_reach_the_run(
    sandbox: PolyaxonSandbox, project: str, tmp_path: Path
) -> None:
    """Params merge into inputs across batches (later wins), tags merge, the snapshot
    lands in meta_info and the commit as a coderef lineage input."""
    client = backend(sandbox, project)
    client.open_run(started("run-p", tags=("a",)), workdir=tmp_path)
    git = GitState(available=True, commit="c" * 40, branch="main", remote="https://git/x")
    code = CodeState(argv=("train.py", "--lr", "0.1"), cwd="/w", executable="python")
    client.write("run-p", Batch(0, (ParamsSet({"lr": 0.1, "net.depth": 3}), git, code)))
    client.write(
        "run-p", Batch(1, (ParamsSet({"lr": 0.01, "wd": float("nan")}), TagsAdded(("b", "a"))))
    )
    client.close()

    stored = sandbox.run(project, run_uuid(OWNER, project, "run-p"))
    assert stored["inputs"] == {"lr": 0.01, "net.depth": 3, "wd": "nan"}
    assert stored["tags"] == ["a", "b"]
    assert stored["meta_info"]["git"]["commit"] == "c" * 40
    assert stored["meta_info"]["code"]["argv"] == ["train.py", "--lr", "0.1"]
    [ref] = sandbox.lineage(project, run_uuid(OWNER, project, "run-p"))
    assert (ref["name"], ref["kind"], ref["is_input"]) == ("c" * 40, "coderef", True)
    assert ref["summary"] == {
        "commit": "c" * 40,
        "branch": "main",
        "url": "https://git/x",
        "is_dirty": None,
    }


def test_data_refs_and_artifacts_become_lineage(
    sandbox: PolyaxonSandbox, project: str, tmp_path: Path
) -> None:
    """DataRefs and logged artifacts are lineage artifacts with kind, direction and digest;
    sending them again adds none."""
    client = backend(sandbox, project)
    client.open_run(started("run-l"), workdir=tmp_path)
    refs = (
        DataRef(
            name="train",
            role="input",
            kind="directory",
            digest=DIGEST,
            size=10,
            files=2,
            path="/data/train",
        ),
        DataRef(name="preds", role="output", kind="file", digest=DIGEST, size=5),
        ArtifactLogged(
            name="net", kind="model", role="output", digest=DIGEST, size=7, framework="torch"
        ),
    )
    client.write("run-l", Batch(0, refs))
    client.write("run-l", Batch(1, refs[:1]))
    client.close()

    lineage = sandbox.lineage(project, run_uuid(OWNER, project, "run-l"))
    found = {
        a["name"]: (a["kind"], a["is_input"], a["path"], a["summary"]["hash"]) for a in lineage
    }
    assert found == {
        "train": ("data", True, "/data/train", DIGEST),
        "preds": ("data", False, None, DIGEST),
        "net": ("model", False, "net", DIGEST),
    }
    assert len(lineage) == 3


def test_metric_events_read_back_exactly(
    sandbox: PolyaxonSandbox, project: str, tmp_path: Path
) -> None:
    """Steps, values (bit for bit; NaN and inf as null) and times of every point read back
    from Polyaxon's event files, `system/cpu` as `system__cpu`; outputs hold the last
    finite values once the run succeeded."""
    rng = np.random.default_rng(7)
    loss = (rng.standard_normal(300) * 10.0 ** rng.integers(-30, 30, 300)).tolist()
    loss[5], loss[6] = float("nan"), float("-inf")
    cpu = [12.5, float("inf"), 0.1, 1e-310]
    lr = [0.1] * 100 + [-0.0] * 100 + [0.0] * 100 + [0.001] * 100  # few distinct values
    client = backend(sandbox, project)
    client.open_run(started("run-m"), workdir=tmp_path)
    client.write("run-m", Batch(0, metrics=(series("loss", range(200), loss[:200]),)))
    client.write(
        "run-m",
        Batch(
            1,
            metrics=(
                series("loss", range(200, 300), loss[200:]),
                series("system/cpu", range(4), cpu),
                series("lr", range(400), lr),
            ),
        ),
    )
    client.set_status("run-m", "succeeded", at=CREATED + 100)
    client.close()

    got = events(sandbox, project, "run-m", "loss")
    assert got["step"] == list(range(300))
    assert values_equal(got["metric"], loss)
    assert got["timestamp"] == [stamp(CREATED + s * 0.25 + 0.000123) for s in range(300)]
    got_cpu = events(sandbox, project, "run-m", "system/cpu")
    assert (got_cpu["step"], got_cpu["metric"]) == ([0, 1, 2, 3], [12.5, None, 0.1, 1e-310])
    got_lr = events(sandbox, project, "run-m", "lr")["metric"]
    assert [math.copysign(1, v) for v in got_lr] == [math.copysign(1, v) for v in lr]
    assert got_lr == lr
    stored = sandbox.run(project, run_uuid(OWNER, project, "run-m"))
    assert stored["outputs"] == {"loss": loss[-1], "system__cpu": 1e-310, "lr": 0.001}


def test_repeated_batches_duplicate_nothing(
    sandbox: PolyaxonSandbox, project: str, tmp_path: Path
) -> None:
    """A batch written twice (also after another one) is applied once; uploads that are
    due (interval 0) replace the event file with the same content."""
    client = backend(sandbox, project, upload_interval=0)
    client.open_run(started("run-r"), workdir=tmp_path)
    first = Batch(0, (ParamsSet({"lr": 0.1}),), (series("loss", [0, 1], [1.0, 0.5]),))
    second = Batch(1, (ParamsSet({"lr": 0.2}),), (series("loss", [2], [0.25]),))
    client.write("run-r", first)
    client.write("run-r", first)
    assert events(sandbox, project, "run-r", "loss")["step"] == [0, 1]  # uploaded when due
    client.write("run-r", second)
    client.write("run-r", first)
    client.close()

    got = events(sandbox, project, "run-r", "loss")
    assert (got["step"], got["metric"]) == ([0, 1, 2], [1.0, 0.5, 0.25])
    assert sandbox.run(project, run_uuid(OWNER, project, "run-r"))["inputs"] == {"lr": 0.2}


_CRASHING = """
import os, sys, json
import numpy as np
from pathlib import Path
from polytrack.sync.backends.base import Batch, Series
from polytrack.sync.backends.polyaxon import PolyaxonBackend
from polytrack.models import RunStarted

uri, workdir, run_id, batches = sys.argv[1], Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
client = PolyaxonBackend.from_uri(uri, environ={}, upload_interval=3600)
client.open_run(RunStarted(id=run_id, project="p", name="crash", created_at=1.7e9, host="h",
                           pid=1, process_started=0.0), workdir=workdir)
for seq, points in batches:
    steps = np.array([p[0] for p in points], dtype=np.int64)
    values = np.array([p[1] for p in points], dtype=np.float64)
    client.write(run_id, Batch(seq, metrics=(Series("loss", steps, values, 1.7e9 + steps),)))
os._exit(0)  # no close(): the staged points are not uploaded
"""


def crash_after(uri_: str, workdir: Path, run_id: str, batches: list[Any]) -> None:
    """Write `batches` ([seq, [[step, value], ...]]) in a process that then dies."""
    subprocess.run(
        [sys.executable, "-c", _CRASHING, uri_, str(workdir), run_id, json.dumps(batches)],
        check=True,
        timeout=120,
    )


def test_a_new_process_uploads_what_a_crashed_one_staged(
    sandbox: PolyaxonSandbox, project: str, tmp_path: Path
) -> None:
    """A process that dies after write() leaves the points staged; the next one finds the
    same run, uploads them on open_run, and skips the batches applied already."""
    crash_after(uri(sandbox, project), tmp_path, "run-c", [[0, [[0, 1.0]]], [1, [[1, 2.0]]]])
    assert events(sandbox, project, "run-c", "loss") == {}  # staged, not uploaded

    client = backend(sandbox, project)
    client.open_run(started("run-c"), workdir=tmp_path)
    assert events(sandbox, project, "run-c", "loss")["metric"] == [1.0, 2.0]
    client.write("run-c", Batch(1, metrics=(series("loss", [1], [2.0]),)))  # the repeat
    client.write("run-c", Batch(2, metrics=(series("loss", [2], [3.0]),)))
    client.close()

    got = events(sandbox, project, "run-c", "loss")
    assert (got["step"], got["metric"]) == ([0, 1, 2], [1.0, 2.0, 3.0])
    assert count_runs(sandbox, project) == 1


@pytest.mark.parametrize("damage", ["cut short", "zeroed"])
def test_a_torn_last_record_is_dropped_and_its_batch_applies_again(
    sandbox: PolyaxonSandbox, project: str, tmp_path: Path, damage: str
) -> None:
    """A crash in the middle of staging a batch (the log's tail cut short, or its length
    written but not its data) leaves that batch unapplied: its repeat is applied, once,
    and the batch before it is intact."""
    crash_after(uri(sandbox, project), tmp_path, "run-t", [[0, [[0, 1.0]]], [1, [[1, 2.0]]]])
    log = tmp_path / "staged.log"  # the backend's staging log: the last record is batch 1
    size = log.stat().st_size
    if damage == "cut short":
        os.truncate(log, size - 5)
    else:
        with open(log, "r+b") as file:
            file.seek(size - 5)
            file.write(b"\0" * 5)

    client = backend(sandbox, project)
    client.open_run(started("run-t"), workdir=tmp_path)
    assert events(sandbox, project, "run-t", "loss")["metric"] == [1.0]
    client.write("run-t", Batch(1, metrics=(series("loss", [1], [2.0]),)))
    client.close()

    got = events(sandbox, project, "run-t", "loss")
    assert (got["step"], got["metric"]) == ([0, 1], [1.0, 2.0])


def test_statuses_become_conditions(sandbox: PolyaxonSandbox, project: str, tmp_path: Path) -> None:
    """running then crashed: conditions running and failed (reason crashed, the message),
    at the times given; a repeated status adds nothing."""
    client = backend(sandbox, project)
    client.open_run(started("run-s"), workdir=tmp_path)
    client.set_status("run-s", "running", at=CREATED + 1)
    client.set_status("run-s", "running", at=CREATED + 1)
    client.set_status("run-s", "crashed", at=CREATED + 2, message="killed by OOM")
    client.close()

    statuses = sandbox.statuses(project, run_uuid(OWNER, project, "run-s"))
    assert statuses["status"] == "failed"
    conditions = [
        (c["type"], c["reason"], c["message"], c["last_transition_time"])
        for c in statuses["status_conditions"]
    ]
    assert conditions == [
        ("running", "polytrack", "", "2024-11-26T09:12:26.500Z"),
        ("failed", "crashed", "killed by OOM", "2024-11-26T09:12:27.500Z"),
    ]


def test_skipped_is_polyaxons_skipped(
    sandbox: PolyaxonSandbox, project: str, tmp_path: Path
) -> None:
    """A run finished skipped is Polyaxon's skipped, saying why."""
    client = backend(sandbox, project)
    client.open_run(started("run-k"), workdir=tmp_path)
    client.set_status("run-k", "skipped", at=CREATED + 1, message="trigger all_succeeded: a failed")
    client.close()

    statuses = sandbox.statuses(project, run_uuid(OWNER, project, "run-k"))
    assert statuses["status"] == "skipped"
    last = statuses["status_conditions"][-1]
    assert (last["type"], last["message"]) == ("skipped", "trigger all_succeeded: a failed")


def test_artifacts_round_trip(sandbox: PolyaxonSandbox, project: str, tmp_path: Path) -> None:
    """An uploaded file downloads byte for byte under its name; a new digest replaces it."""
    client = backend(sandbox, project)
    client.open_run(started("run-f"), workdir=tmp_path / "work")
    path = tmp_path / "weights.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    client.upload_artifact("run-f", Artifact(path, "model/weights.bin", DIGEST, len(data)))
    client.upload_artifact("run-f", Artifact(path, "model/weights.bin", DIGEST, len(data)))
    client.upload_artifact("run-f", Artifact(path, "top level é.bin", DIGEST, len(data)))
    run_path = f"{OWNER}/{project}/runs/{run_uuid(OWNER, project, 'run-f')}/artifact"

    def download(name: str) -> bytes:
        response = requests.get(
            f"{sandbox.url}/streams/v1/polyaxon/{run_path}",
            params={"path": name, "stream": "true", "force": "true"},
            timeout=30,
        )
        response.raise_for_status()
        return response.content

    assert download("model/weights.bin") == data
    assert download("top level é.bin") == data
    path.write_bytes(b"second version")
    client.upload_artifact("run-f", Artifact(path, "model/weights.bin", "sha256:" + "cd" * 32, 14))
    client.close()
    assert download("model/weights.bin") == b"second version"


def test_unopened_runs_are_rejected(sandbox: PolyaxonSandbox, project: str) -> None:
    """write() for a run this backend never opened is a rejection, not a crash."""
    client = backend(sandbox, project)
    with pytest.raises(BackendRejectedError, match="never opened"):
        client.write("nope", Batch(0))
    client.close()


def test_event_names_follow_polyaxon() -> None:
    """Keys map to event names as Polyaxon's client makes them."""
    assert [event_name(k) for k in ("system/cpu", "val.loss", "a b", "é/x\\y", "%")] == [
        "system__cpu",
        "val-loss",
        "a-b",
        "e__x__y",
        "metric",
    ]
