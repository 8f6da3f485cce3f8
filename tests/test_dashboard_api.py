"""The dashboard's JSON API (docs/dashboard.md) against a real home made with the public API."""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import polytrack
from _isolated import isolated
from polytrack.dashboard.app import create_app

# What the tests' runs record: no git, environment or system sampling (slow, and noise
# in the keys), but their output, which the logs endpoint reads.
CAPTURE = {
    "git": False,
    "code": False,
    "environment": False,
    "hardware": False,
    "system": False,
    "logs": True,
}
BIG = 20_000  # points of the long series


def _home(root: Path) -> dict[str, Any]:
    """Three finished runs in two projects, with params, tags, a long series holding
    NaN and ±inf, output, an input file, a file artifact and a directory artifact."""
    home = root / "home"
    data = root / "train.csv"
    data.write_text("x,y\n1,2\n")
    model = root / "model.bin"
    model.write_bytes(b"\x00weights\xff" * 100)
    plots = root / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "a.txt").write_text("A")
    (plots / "sub" / "b.txt").write_text("B")

    first = polytrack.init(
        "vision", "resnet", params={"lr": 0.1, "opt": "sgd"}, tags=["cnn"],
        dir=home, mode="offline", capture=CAPTURE,
    )  # fmt: skip
    polytrack.log_data_ref("train", str(data))
    for step in range(BIG):
        value = 1.0 / (step + 1)
        if step == 5_000:
            value = math.nan
        elif step == 6_000:
            value = math.inf
        elif step == 7_000:
            value = -math.inf
        elif step == 8_000:
            value = -100.0  # the global minimum, in the middle of a bucket
        elif step == 9_000:
            value = 50.0  # the global maximum
        polytrack.log_metrics({"loss": value}, step=step)
    print("epoch 1 done")
    print("training finished")
    polytrack.log_artifact(str(model), name="model")
    polytrack.log_artifact(str(plots), name="plots")
    polytrack.log_outputs(accuracy=0.9)
    first.finish()

    second = polytrack.init(
        "vision", "vit", params={"lr": 0.01, "opt": "sgd"}, tags=["transformer"],
        dir=home, mode="offline", capture=CAPTURE,
    )  # fmt: skip
    polytrack.log_data_ref("train", str(data))
    for step in range(10):
        polytrack.log_metrics({"loss": 0.5 - step / 100, "acc": step / 10}, step=step)
    second.finish()

    third = polytrack.init(
        "audio", "wav", params={"lr": 0.5}, dir=home, mode="offline", capture=CAPTURE
    )
    polytrack.log_metrics({"loss": 2.0}, step=0)
    third.finish()
    return {"home": home, "ids": [first.id, second.id, third.id], "data": data}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("dashboard")
    with isolated(root):
        yield _home(root)


@pytest.fixture
def client(recorded: dict[str, Any]) -> TestClient:
    app = create_app(recorded["home"], token=None, loopback=True)
    return TestClient(app, base_url="http://127.0.0.1:5005")


def test_info(client: TestClient, recorded: dict[str, Any]) -> None:
    info = client.get("/api/info").json()
    assert info == {
        "version": polytrack.__version__,
        "home": str(recorded["home"]),
        "projects": ["audio", "vision"],
        "run_count": 3,
        "token_required": False,
    }


def test_info_shows_a_home_under_the_users_home_with_a_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header names a home under the user's home directory as `~/...`: a screenshot
    does not carry the account's path."""
    monkeypatch.setenv("HOME", str(tmp_path / "ana"))
    home = tmp_path / "ana" / "experiments"
    home.mkdir(parents=True)
    app = create_app(home, token=None, loopback=True)
    info = TestClient(app, base_url="http://127.0.0.1:5005").get("/api/info").json()
    assert info["home"] == "~/experiments"


def test_runs_lists_newest_first_with_rows(client: TestClient, recorded: dict[str, Any]) -> None:
    page = client.get("/api/runs").json()
    first, second, third = recorded["ids"]
    assert page["total"] == 3 and page["offset"] == 0 and page["limit"] == 100
    assert [run["id"] for run in page["runs"]] == [third, second, first]
    assert page["param_keys"] == ["lr", "opt"]
    assert page["metric_keys"] == ["acc", "loss"]
    row = page["runs"][2]
    assert row["name"] == "resnet" and row["project"] == "vision"
    assert row["status"] == "succeeded" and row["live"] is False
    assert row["tags"] == ["cnn"] and row["params"] == {"lr": 0.1, "opt": "sgd"}
    assert row["duration"] == pytest.approx(row["finished_at"] - row["created_at"])
    # The long series ends finite, but its min is a number and the count is whole.
    assert row["metrics"]["loss"]["count"] == BIG
    assert row["metrics"]["loss"]["min"] == "-Infinity"  # non-finite: a string
    assert row["metrics"]["loss"]["step"] == BIG - 1
    assert set(row) >= {"user", "host", "updated_at", "notes"}


def test_runs_paging(client: TestClient, recorded: dict[str, Any]) -> None:
    newest_first = list(reversed(recorded["ids"]))
    page = client.get("/api/runs", params={"offset": 1, "limit": 1}).json()
    assert page["total"] == 3
    assert [run["id"] for run in page["runs"]] == newest_first[1:2]
    past = client.get("/api/runs", params={"offset": 5}).json()
    assert past["total"] == 3 and past["runs"] == []


def test_runs_sort_filter_search_group(client: TestClient, recorded: dict[str, Any]) -> None:
    first, second, third = recorded["ids"]

    def ids(**params: str) -> list[str]:
        response = client.get("/api/runs", params=params)
        assert response.status_code == 200, response.text
        return [run["id"] for run in response.json()["runs"]]

    assert ids(order_by="params.lr") == [second, first, third]
    assert ids(order_by="-params.lr") == [third, first, second]
    assert ids(order_by="created_at") == [first, second, third]  # the RunRow name works
    assert ids(where="params.lr < 0.2") == [second, first]
    assert ids(project="audio") == [third]
    assert ids(q="res") == [first]  # name substring
    assert ids(q="transformer") == [second]  # exact tag
    assert ids(q="trans") == []  # a tag matches whole only
    assert ids(q="*") == []  # glob characters are literal
    assert ids(q="v", where="params.lr < 0.05") == [second]
    assert ids(group="project", order_by="params.lr") == [third, second, first]
    filtered = client.get("/api/runs", params={"where": "params.lr < 0.2", "q": "vi"}).json()
    assert filtered["total"] == 1


@pytest.mark.parametrize(
    ("where", "q", "position"),
    [
        ("params.lr < < 1", None, 12),
        ("params.lr < < 1", "res", 12),  # the search is added around it: same position
        ("metrics.los < 1", "res", 0),  # a typo'd key
    ],
)
def test_bad_where_reports_the_token(
    client: TestClient, where: str, q: str | None, position: int
) -> None:
    params = {"where": where} | ({"q": q} if q else {})
    response = client.get("/api/runs", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["kind"] == "query"
    assert error["expression"] == where
    assert error["position"] == position
    assert error["message"]


def test_bad_order_and_arguments(client: TestClient) -> None:
    response = client.get("/api/runs", params={"order_by": "-tags"})
    assert response.status_code == 400 and response.json()["error"]["kind"] == "query"
    for params in ({"limit": "0"}, {"offset": "-1"}, {"limit": "x"}, {"group": "user"}):
        response = client.get("/api/runs", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["kind"] == "bad_request"


def test_run_detail(client: TestClient, recorded: dict[str, Any]) -> None:
    first = recorded["ids"][0]
    run = client.get(f"/api/runs/{first}").json()
    assert run["id"] == first and run["outputs"] == {"accuracy": 0.9}
    assert run["metric_keys"] == ["loss"] and run["system_keys"] == []
    assert run["reproduce"] == f"polytrack reproduce {first}"
    assert run["attempts"] == 1 and run["damaged"] == [] and run["message"] is None
    assert Path(run["path"]).name == first
    # a unique prefix and a name reach it too, as get_run does
    assert client.get(f"/api/runs/{first[:6]}").json()["id"] == first
    assert client.get("/api/runs/resnet").json()["id"] == first


@pytest.mark.parametrize("ref", ["nosuchrun", "a%00b", "%2e%2e", "a%5Cb"])
def test_unknown_run_is_404_json(client: TestClient, ref: str) -> None:
    for suffix in ("", "/series?key=loss", "/logs", "/artifacts", "/snapshot", "/lineage"):
        response = client.get(f"/api/runs/{ref}{suffix}")
        assert response.status_code == 404, (ref, suffix)
        assert response.json()["error"]["kind"] == "not_found"


def test_unknown_api_path_is_404_json(client: TestClient) -> None:
    response = client.get("/api/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["kind"] == "not_found"


def test_series_is_downsampled_keeping_extremes_and_nonfinite(
    client: TestClient, recorded: dict[str, Any]
) -> None:
    first = recorded["ids"][0]
    series = client.get(f"/api/runs/{first}/series", params={"key": "loss", "points": 500}).json()
    assert series["key"] == "loss" and series["total"] == BIG and series["downsampled"]
    steps, values, times = series["steps"], series["values"], series["times"]
    assert len(steps) == len(values) == len(times)
    assert 250 <= len(steps) <= 3 * 250 + 2
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == BIG - 1
    assert series["nonfinite"] == {"nan": [5000], "posinf": [6000], "neginf": [7000]}
    by_step = dict(zip(steps, values, strict=True))
    assert by_step[8000] == -100.0 and by_step[9000] == 50.0  # global min and max
    assert by_step[5000] is None and by_step[6000] is None and by_step[7000] is None
    assert all(isinstance(t, float) for t in times)


def test_series_short_is_whole_and_full_downloads(
    client: TestClient, recorded: dict[str, Any]
) -> None:
    first, second, _ = recorded["ids"]
    short = client.get(f"/api/runs/{second}/series", params={"key": "acc"}).json()
    assert short["downsampled"] is False and short["total"] == 10
    assert short["values"] == [step / 10 for step in range(10)]
    full = client.get(f"/api/runs/{first}/series.json", params={"key": "loss"}).json()
    assert full["total"] == len(full["steps"]) == BIG and full["downsampled"] is False
    assert full["values"][5000] is None and full["values"][1] == 0.5
    response = client.get(f"/api/runs/{first}/series.csv", params={"key": "loss"})
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0] == "step,value,time" and len(lines) == BIG + 1
    assert lines[5001].split(",")[:2] == ["5000", "nan"]
    assert lines[6001].split(",")[:2] == ["6000", "inf"]
    missing = client.get(f"/api/runs/{second}/series", params={"key": "nope"}).json()
    assert missing["total"] == 0 and missing["steps"] == []


def test_series_needs_a_key(client: TestClient, recorded: dict[str, Any]) -> None:
    response = client.get(f"/api/runs/{recorded['ids'][0]}/series")
    assert response.status_code == 400
    assert "key" in response.json()["error"]["message"]


def test_logs_with_cursor_and_search(client: TestClient, recorded: dict[str, Any]) -> None:
    first = recorded["ids"][0]
    logs = client.get(f"/api/runs/{first}/logs").json()
    texts = [line["text"] for line in logs["lines"]]
    assert texts == ["epoch 1 done", "training finished"]
    assert logs["lines"][0]["stream"] == "stdout"
    assert logs["cursor"] == logs["total"] == 2
    assert client.get(f"/api/runs/{first}/logs", params={"after": 2}).json()["lines"] == []
    one = client.get(f"/api/runs/{first}/logs", params={"limit": 1}).json()
    assert [line["text"] for line in one["lines"]] == ["epoch 1 done"] and one["cursor"] == 1
    found = client.get(f"/api/runs/{first}/logs", params={"q": "FINISHED"}).json()
    assert [line["text"] for line in found["lines"]] == ["training finished"]


def test_artifacts_list_and_download(client: TestClient, recorded: dict[str, Any]) -> None:
    first = recorded["ids"][0]
    listed = client.get(f"/api/runs/{first}/artifacts").json()["artifacts"]
    by_name = {a["name"]: a for a in listed}
    assert set(by_name) == {"model", "plots"}
    model = by_name["model"]
    assert model["files"] == 1 and model["size"] == 900 and model["digest"].startswith("sha256:")
    assert model["download"] == f"/api/runs/{first}/artifacts/model/download"

    file = client.get(model["download"])
    assert file.status_code == 200 and file.content == b"\x00weights\xff" * 100
    assert "model.bin" in file.headers["content-disposition"]

    archive = client.get(by_name["plots"]["download"])
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert sorted(opened.namelist()) == ["plots/a.txt", "plots/sub/b.txt"]
        assert opened.read("plots/sub/b.txt") == b"B"


@pytest.mark.parametrize(
    "name",
    [
        "%2E%2E",  # ".."
        "..%2F..%2Fetc%2Fpasswd",  # encoded slashes
        "%2Fetc%2Fpasswd",  # absolute
        "plots%2F..%2F..%2Fmodel",
        "model%5C..%5C..",  # backslashes
        "nosuch",
    ],
)
def test_artifact_download_refuses_paths_outside(
    client: TestClient, recorded: dict[str, Any], name: str
) -> None:
    first = recorded["ids"][0]
    response = client.get(f"/api/runs/{first}/artifacts/{name}/download")
    assert response.status_code in (400, 404), name
    assert response.json()["error"]["kind"] in ("bad_request", "not_found")


def test_snapshot_shape(client: TestClient, recorded: dict[str, Any]) -> None:
    snap = client.get(f"/api/runs/{recorded['ids'][0]}/snapshot").json()
    assert set(snap) == {"git", "code", "environment", "hardware", "seeds", "data_refs"}
    assert snap["git"] is None and snap["environment"] is None  # not captured here
    (ref,) = snap["data_refs"]
    assert ref["name"] == "train" and ref["role"] == "input"
    assert ref["digest"].startswith("sha256:") and ref["path"] == str(recorded["data"])


def test_run_lineage_graph(client: TestClient, recorded: dict[str, Any]) -> None:
    first = recorded["ids"][0]
    graph = client.get(f"/api/runs/{first}/lineage").json()
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert nodes[f"run:{first}"]["kind"] == "run"
    assert nodes[f"run:{first}"]["status"] == "succeeded"
    data = [n for n in graph["nodes"] if n["kind"] == "data"]
    assert [n["label"] for n in data] == ["train"]
    digest = data[0]["id"]
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert (digest, f"run:{first}") in edges  # data flows into the run
    assert any(e["source"] == f"run:{first}" and nodes[e["target"]]["kind"] != "run"
               for e in graph["edges"])  # fmt: skip
    for edge in graph["edges"]:
        assert edge["source"] in nodes and edge["target"] in nodes and edge["label"]


def test_lineage_by_name_and_digest(client: TestClient, recorded: dict[str, Any]) -> None:
    first, second, _ = recorded["ids"]
    found = client.get("/api/lineage", params={"ref": "train"}).json()
    assert {run["id"] for run in found["consumers"]} == {first, second}
    assert found["producers"] == []
    assert any(node["kind"] == "data" for node in found["nodes"])
    digest = next(n["digest"] for n in found["nodes"] if n["kind"] == "data")
    by_digest = client.get("/api/lineage", params={"ref": digest}).json()
    assert {run["id"] for run in by_digest["consumers"]} == {first, second}
    model = client.get("/api/lineage", params={"ref": "model"}).json()
    assert [run["id"] for run in model["producers"]] == [first]
    missing = client.get("/api/lineage", params={"ref": "nothing-like-it"})
    assert missing.status_code == 404 and missing.json()["error"]["kind"] == "not_found"
    assert client.get("/api/lineage").status_code == 400
    assert client.get("/api/lineage", params={"ref": "/dev/null"}).status_code == 400


def test_compare_shape(client: TestClient, recorded: dict[str, Any]) -> None:
    first, second, _ = recorded["ids"]
    compared = client.get("/api/compare", params={"ids": f"{first},{second}"}).json()
    assert [run["id"] for run in compared["runs"]] == [first, second]
    params = compared["params"]
    assert params[0] == {"key": "lr", "values": [0.1, 0.01], "differs": True}  # differing first
    assert {"key": "opt", "values": ["sgd", "sgd"], "differs": False} in params
    metrics = {row["key"]: row for row in compared["metrics"]}
    assert metrics["acc"]["values"] == [None, 0.9]
    assert metrics["loss"]["differs"] is True
    assert compared["diffs"] == [None, None]
    for row in compared["snapshot"]:
        assert row["section"] in ("git", "code", "data", "environment", "hardware")
        assert len(row["values"]) == 2 and isinstance(row["differs"], bool)
    json.dumps(compared, allow_nan=False)


def test_compare_needs_two_runs(client: TestClient, recorded: dict[str, Any]) -> None:
    first = recorded["ids"][0]
    assert client.get("/api/compare", params={"ids": first}).status_code == 400
    missing = client.get("/api/compare", params={"ids": f"{first},nosuchrun"})
    assert missing.status_code == 404


def test_pages_serve_the_front_end(client: TestClient) -> None:
    for path in ("/", "/runs/abc", "/compare?ids=a,b", "/lineage?ref=x"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
    assert client.get("/assets/..%2F..%2Fapp.py").status_code == 404
    assert client.get("/assets/nothing.js").status_code == 404


def test_a_missing_front_end_says_so(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from polytrack.dashboard import app

    monkeypatch.setattr(app, "STATIC_DIR", tmp_path / "no-static")
    response = client.get("/")
    assert response.status_code == 500 and "scripts/build-dashboard" in response.text
    assert client.get("/assets/app.js").status_code == 404
    assert client.get("/api/info").status_code == 200  # the API works meanwhile


def _within_2s(read: Callable[[], dict[str, Any]], steps: list[int]) -> dict[str, Any]:
    """Poll `read` until its series has `steps`: the contract allows 2 s after the log call
    returned (today they are there at once: the journal is read as it is written)."""
    deadline = time.monotonic() + 2.0
    while True:
        series = read()
        if series["steps"] == steps or time.monotonic() > deadline:
            assert series["steps"] == steps
            return series
        time.sleep(0.05)


def test_live_run_points_are_readable_at_once(tmp_path: Path) -> None:
    home = tmp_path / "live-home"
    run = polytrack.init("live", "now", dir=home, mode="offline", capture=False)
    try:
        client = TestClient(
            create_app(home, token=None, loopback=True), base_url="http://localhost"
        )
        for step in range(3):
            polytrack.log_metric("loss", 1.0 - step / 10, step=step)
        row = client.get("/api/runs").json()["runs"][0]
        assert row["id"] == run.id and row["status"] == "running" and row["live"] is True
        assert row["duration"] is not None and row["finished_at"] is None
        _within_2s(lambda: client.get(f"/api/runs/{run.id}/series?key=loss").json(), [0, 1, 2])
        polytrack.log_metric("loss", 0.1, step=3)
        series = _within_2s(
            lambda: client.get(f"/api/runs/{run.id}/series?key=loss").json(), [0, 1, 2, 3]
        )
        assert series["values"][-1] == 0.1
        assert client.get(f"/api/runs/{run.id}").json()["metrics"]["loss"]["count"] >= 3
    finally:
        run.finish()
    after = client.get(f"/api/runs/{run.id}").json()
    assert after["live"] is False and after["status"] == "succeeded"


def test_git_snapshot_and_compare_show_the_uncommitted_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _git import git

    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print('one')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-qm", "first")
    monkeypatch.chdir(repo)
    home = tmp_path / "git-home"
    ids = []
    for text in ("two", "three"):
        (repo / "train.py").write_text(f"print('{text}')\n")
        run = polytrack.init(
            "p", text, dir=home, mode="offline", capture=CAPTURE | {"git": True, "logs": False}
        )
        run.finish()
        ids.append(run.id)
    client = TestClient(create_app(home, token=None, loopback=True), base_url="http://[::1]")
    git_state = client.get(f"/api/runs/{ids[0]}/snapshot").json()["git"]
    assert git_state["commit"] == git(repo, "rev-parse", "HEAD")
    assert git_state["branch"] == "main" and git_state["dirty"] is True
    assert "+print('two')" in git_state["diff"].splitlines()

    compared = client.get("/api/compare", params={"ids": ",".join(ids)}).json()
    assert "+print('three')" in compared["diffs"][1].splitlines()
    rows = {(row["section"], row["key"]): row for row in compared["snapshot"]}
    assert rows["git", "commit"]["differs"] is False
    assert rows["git", "uncommitted"]["differs"] is True
