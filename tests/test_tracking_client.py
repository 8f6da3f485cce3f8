"""`polytrack.tracking`'s client side: `tracking.Run`, the run's paths and outputs, the refs,
`settings.CLIENT_CONFIG`, and the server-only calls that raise `ServerOnlyError`."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import polytrack
from polytrack import settings, tracking
from polytrack.errors import PolytrackError, RunStateError, ServerOnlyError, TrackingWarning
from polytrack.run import DisabledRun, Run as PolytrackRun
from polytrack.tracking.client import PolyaxonClient, ProjectClient, RunClient

P, K = "POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY"
# Polyaxon's signatures, copied from traceml 1.5.0 `traceml/tracking/__init__.py` and
# `traceml/tracking/run.py` (`Run.__init__`): name -> (parameter, kind, repr of default).
POLYAXON: dict[str, list[tuple[str, str, str | None]]] = {
    "get_or_create_run": [("tracking_run", P, "None")],
    "get_artifacts_path": [
        ("rel_path", P, "None"), ("ensure_path", P, "False"), ("is_dir", P, "False"),
        ("use_store_path", P, "False"),
    ],
    "get_outputs_path": [
        ("rel_path", P, "None"), ("ensure_path", P, "True"), ("is_dir", P, "False"),
        ("use_store_path", P, "False"),
    ],
    "get_tensorboard_path": [("rel_path", P, "'tensorboard'"), ("use_store_path", P, "False")],
    "log_status": [
        ("status", P, None), ("reason", P, "None"), ("message", P, "None"),
        ("last_transition_time", P, "None"), ("last_update_time", P, "None"),
    ],
    "log_artifact_ref": [
        ("path", P, None), ("kind", P, None), ("name", P, "None"), ("hash", P, "None"),
        ("content", P, "None"), ("summary", P, "None"), ("is_input", P, "False"),
        ("rel_path", P, "None"), ("skip_hash_calculation", P, "False"),
    ],
    "log_tensorboard_ref": [
        ("path", P, None), ("name", P, "'tensorboard'"), ("is_input", P, "False"),
        ("rel_path", P, "None"),
    ],
    "log_model_ref": [
        ("path", P, None), ("name", P, "None"), ("framework", P, "None"),
        ("summary", P, "None"), ("is_input", P, "False"), ("rel_path", P, "None"),
        ("skip_hash_calculation", P, "False"),
    ],
    "log_file_ref": [
        ("path", P, None), ("name", P, "None"), ("hash", P, "None"), ("content", P, "None"),
        ("summary", P, "None"), ("is_input", P, "False"), ("rel_path", P, "None"),
        ("skip_hash_calculation", P, "False"),
    ],
    "log_dir_ref": [
        ("path", P, None), ("name", P, "None"), ("hash", P, "None"), ("summary", P, "None"),
        ("is_input", P, "False"), ("rel_path", P, "None"),
        ("skip_hash_calculation", P, "False"),
    ],
    "log_env": [("rel_path", P, "None"), ("content", P, "None")],
}  # fmt: skip
RUN_INIT = [
    ("self", P, None), ("owner", P, "None"), ("project", P, "None"), ("run_uuid", P, "None"),
    ("client", P, "None"), ("track_code", P, "True"), ("track_env", P, "True"),
    ("track_logs", P, "True"), ("refresh_data", P, "False"), ("artifacts_path", P, "None"),
    ("collect_artifacts", P, "None"), ("collect_resources", P, "None"), ("is_new", P, "None"),
    ("is_offline", P, "None"), ("no_op", P, "None"), ("name", P, "None"),
    ("description", P, "None"), ("tags", P, "None"), ("auto_create", P, "True"),
    ("log_context", K, "False"),
]  # fmt: skip
QUIET = {"track_code": False, "track_env": False, "track_logs": False, "collect_resources": False}


def parameters(function: Any) -> list[tuple[str, str, str | None]]:
    return [
        (p.name, p.kind.name, None if p.default is p.empty else repr(p.default))
        for p in inspect.signature(function).parameters.values()
    ]


@pytest.fixture(autouse=True)
def _store(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYTRACK_HOME", str(home))
    monkeypatch.delenv("POLYTRACK_RUN_ID", raising=False)


def test_signatures_match_polyaxons() -> None:
    """The path, ref and status functions, their `Run` methods and `Run()` take
    Polyaxon's parameters: names, kinds, order, defaults."""
    for name, expected in POLYAXON.items():
        assert parameters(getattr(tracking, name)) == expected, name
        if name != "get_or_create_run":
            assert parameters(getattr(tracking.Run, name)) == [("self", P, None), *expected]
    assert parameters(tracking.Run.__init__) == RUN_INIT
    for name in tracking.__all__:  # every function is a method of the same form
        if name not in ("Run", "init", "get_or_create_run"):
            method = getattr(tracking.Run, name)
            assert parameters(method)[1:] == parameters(getattr(tracking, name)), name


def test_the_copied_table_is_traceml_s() -> None:
    """The tables above match the installed traceml's source, where it is installed."""
    spec = importlib.util.find_spec("traceml")
    if spec is None or spec.origin is None:
        pytest.skip("traceml is not installed here")
    folder = Path(spec.origin).parent / "tracking"
    functions = {
        node.name: node
        for node in ast.parse((folder / "__init__.py").read_text()).body
        if isinstance(node, ast.FunctionDef)
    }
    for name, expected in POLYAXON.items():
        args = functions[name].args
        defaults = [None] * (len(args.args) - len(args.defaults)) + args.defaults
        found = [
            (a.arg, P, None if d is None else ast.unparse(d).replace('"', "'"))
            for a, d in zip(args.args, defaults, strict=True)
        ]
        assert found == expected, name
    run_class = next(
        node
        for node in ast.parse((folder / "run.py").read_text()).body
        if isinstance(node, ast.ClassDef) and node.name == "Run"
    )
    init = next(
        n for n in run_class.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"
    )
    assert [a.arg for a in init.args.args] == [p[0] for p in RUN_INIT if p[1] == P]
    assert [a.arg for a in init.args.kwonlyargs] == ["log_context"]


def test_a_run_records_through_its_methods(home: Path) -> None:
    """Run() starts a run that is TRACKING_RUN; its methods record into it; end() ends it."""
    run = tracking.Run(project="iris", name="rf", tags=["examples"], description="d", **QUIET)
    assert tracking.TRACKING_RUN is run and isinstance(run.polytrack_run, PolytrackRun)
    assert (run.project, run.name, run.status) == ("iris", "rf", "running")
    run.log_inputs(n_estimators=3, max_depth=2)
    run.log_metrics(step=0, loss=0.5)
    run.log_metric("loss", 0.25, step=1)
    run.log_outputs(accuracy=0.9)
    data = run.run_data
    assert (data.uuid, data.name, data.project, data.description, data.tags) == (
        run.run_uuid, "rf", "iris", "d", ("examples",),
    )  # fmt: skip
    assert run.get_inputs() == {"n_estimators": 3, "max_depth": 2}
    assert run.get_outputs() == {"accuracy": 0.9}
    run.end()
    assert tracking.TRACKING_RUN is None and run.status == "succeeded"
    view = polytrack.get_run(run.run_uuid, home=home)
    assert view.history("loss")[1].tolist() == [0.5, 0.25]
    assert (view.status, view.outputs) == ("succeeded", {"accuracy": 0.9})


def test_run_uuid_continues_and_auto_create_false_wraps_the_current_run(home: Path) -> None:
    """Run(run_uuid=...) continues a recorded run, or wraps it when it is the current one;
    Run(auto_create=False) wraps the current run; is_new starts another."""
    first = tracking.init(project="p", **QUIET)
    first.log_metrics(step=0, loss=1.0)
    assert tracking.Run(auto_create=False).polytrack_run is first.polytrack_run
    assert tracking.Run(run_uuid=first.run_uuid).polytrack_run is first.polytrack_run
    first.end()
    again = tracking.Run(run_uuid=first.run_uuid, **QUIET)
    assert again.run_uuid == first.run_uuid
    again.log_metrics(loss=0.5)
    again.end()
    assert polytrack.get_run(first.run_uuid, home=home).history("loss")[0].tolist() == [0, 1]
    other = tracking.Run(run_uuid=first.run_uuid, is_new=True, **QUIET)
    assert other.run_uuid != first.run_uuid
    other.end()


def test_outputs_path_is_a_run_directory_kept_as_an_artifact(home: Path) -> None:
    """get_outputs_path is <run dir>/files/outputs; what is written there becomes the
    artifact "outputs" at end(), and the files stay in the run's directory."""
    run = tracking.init(project="p", **QUIET)
    run_dir = run.polytrack_run.dir
    assert run_dir is not None
    outputs = Path(tracking.get_outputs_path())
    assert outputs == run_dir / "files" / "outputs" and outputs.is_dir()
    assert Path(tracking.get_artifacts_path()) == run_dir / "files"
    model = Path(tracking.get_outputs_path("checkpoints/model.bin"))
    assert model.parent.is_dir() and not model.exists()  # the parent only, as Polyaxon's
    model.write_bytes(b"weights")
    deep = Path(tracking.get_artifacts_path("a/b", ensure_path=True, is_dir=True))
    assert deep.is_dir() and deep == run_dir / "files" / "a" / "b"
    board = Path(tracking.get_tensorboard_path())
    assert board == outputs / "tensorboard" and board.is_dir()
    (board / "events.out").write_bytes(b"tb")
    tracking.end()
    artifact = polytrack.get_run(run.run_uuid, home=home).artifact("outputs")
    assert sorted((f.path, f.size) for f in artifact.files) == [
        ("checkpoints/model.bin", 7), ("tensorboard/events.out", 2),
    ]  # fmt: skip
    assert model.read_bytes() == b"weights"  # kept where the script wrote it


def _script(code: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, "POLYTRACK_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("ending", "status", "code"),
    [("", "succeeded", 0), ("raise RuntimeError('boom')", "failed", 1)],
    ids=["script-returns", "script-raises"],
)
def test_outputs_are_kept_however_the_script_ends(
    home: Path, tmp_path: Path, ending: str, status: str, code: int
) -> None:
    """A script that never calls end(), or dies of an exception, still has its outputs kept."""
    script = (
        "from polytrack import tracking\n"
        "tracking.init(project='p', track_env=False, collect_resources=False)\n"
        "print(tracking.TRACKING_RUN.run_uuid, flush=True)\n"
        "with open(tracking.get_outputs_path('report.txt'), 'w') as f:\n"
        "    f.write('done')\n"
        f"{ending}\n"
    )
    done = _script(script, tmp_path, home)
    assert done.returncode == code, done.stderr[-2000:]
    view = polytrack.get_run(done.stdout.split()[0], home=home)
    assert view.status == status
    files = view.artifact("outputs").files
    assert [(f.path, f.size) for f in files] == [("report.txt", 4)]


def test_refs_keep_outputs_and_hash_inputs(home: Path, tmp_path: Path) -> None:
    """File, dir, model and artifact refs of outputs are kept as artifacts with their kind
    and summary; refs of inputs are recorded as data refs; a TensorBoard dir elsewhere
    is kept at the finish."""
    (tmp_path / "report.json").write_text("{}")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a.png").write_bytes(b"png")
    (tmp_path / "model.joblib").write_bytes(b"model")
    (tmp_path / "data.csv").write_text("x\n1\n")
    board = tmp_path / "tb"
    run = tracking.init(project="p", **QUIET)
    tracking.log_file_ref(str(tmp_path / "report.json"), summary={"rows": 0})
    tracking.log_dir_ref(str(tmp_path / "plots"), name="figures")
    tracking.log_model_ref(str(tmp_path / "model.joblib"), framework="scikit-learn")
    tracking.log_artifact_ref(str(tmp_path / "data.csv"), kind="csv", name="table")
    tracking.log_file_ref(str(tmp_path / "data.csv"), name="train", is_input=True)
    tracking.log_tensorboard_ref(str(board))
    board.mkdir()
    (board / "events.out").write_bytes(b"tb")  # written after the ref: kept at the finish
    tracking.end()
    view = polytrack.get_run(run.run_uuid, home=home)
    report, figures = view.artifact("report"), view.artifact("figures")
    assert (report.kind, report.metadata) == ("file", {"rows": 0})
    assert (figures.kind, [f.path for f in figures.files]) == ("directory", ["a.png"])
    model = view.artifact("model")
    assert (model.kind, model.framework) == ("model", "scikit-learn")
    assert view.artifact("table").kind == "csv"
    assert view.artifact("tensorboard").kind == "tensorboard"
    refs = view.snapshot().data_refs
    assert [(d.name, d.role, d.kind) for d in refs] == [("train", "input", "file")]


def test_log_env_and_log_status(home: Path) -> None:
    """log_env writes env.json under the outputs path; log_status finishes the run on a
    final status and warns (recording nothing) on another."""
    run = tracking.init(project="p", **QUIET)
    tracking.log_env()
    env = json.loads(Path(tracking.get_outputs_path("env.json")).read_text())
    assert env["python_executable"] == sys.executable
    tracking.log_env(rel_path="custom.json", content={"k": 1})
    assert json.loads(Path(tracking.get_outputs_path("custom.json")).read_text()) == {"k": 1}
    with pytest.warns(TrackingWarning, match="only a run's final status"):
        tracking.log_status("running")
    assert run.status == "running"
    tracking.log_status("failed", reason="OOM", message="out of memory")
    view = polytrack.get_run(run.run_uuid, home=home)
    assert (view.status, view.message) == ("failed", "OOM: out of memory")
    assert sorted(f.path for f in view.artifact("outputs").files) == ["custom.json", "env.json"]


def test_client_config_reads_polytracks_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLIENT_CONFIG.is_managed is true inside a `polytrack run` workload (POLYTRACK_RUN_ID
    set), is_offline and no_op follow POLYTRACK_MODE; read anew at each access."""
    config = settings.CLIENT_CONFIG
    assert (config.is_managed, config.is_offline, config.no_op, config.host) == (
        False, False, False, None,
    )  # fmt: skip
    monkeypatch.setenv("POLYTRACK_RUN_ID", "abc123")
    monkeypatch.setenv("POLYTRACK_MODE", "offline")
    assert settings.CLIENT_CONFIG.is_managed and settings.CLIENT_CONFIG.is_offline
    monkeypatch.setenv("POLYTRACK_MODE", "disabled")
    assert settings.CLIENT_CONFIG.no_op
    with pytest.raises(AttributeError):
        settings.NOT_A_SETTING  # noqa: B018


def test_a_managed_run_is_the_one_recorded_into(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a `polytrack run` workload, Run() records into the run made at submission."""
    monkeypatch.setenv("POLYTRACK_RUN_ID", "submitted1")
    assert settings.CLIENT_CONFIG.is_managed
    run = tracking.Run(**QUIET)
    assert run.run_uuid == "submitted1"
    run.log_outputs(done=True)
    run.end()
    assert polytrack.get_run("submitted1", home=home).outputs == {"done": True}


def test_server_only_calls_raise_and_say_what_to_use() -> None:
    """Polyaxon's REST clients and server calls raise ServerOnlyError, a PolytrackError and
    NotImplementedError, naming polytrack's way; other names are AttributeErrors."""
    for client in (RunClient, ProjectClient, PolyaxonClient):
        with pytest.raises(ServerOnlyError, match=r"polytrack\.runs"):
            client(owner="acme", project="mnist")
    from polytrack.tracking import promote_to_model_version  # importable: fails when called

    with pytest.raises(ServerOnlyError, match="log_model") as caught:
        promote_to_model_version("v1")
    assert isinstance(caught.value, PolytrackError) and isinstance(
        caught.value, NotImplementedError
    )
    run = tracking.init(project="p", **QUIET)
    with pytest.raises(ServerOnlyError, match="polytrack sync"):
        run.push_offline_run(path="x")
    with pytest.raises(AttributeError, match="not its server's"):
        run.no_such_call  # noqa: B018
    with pytest.raises(NotImplementedError):
        run.create()
    tracking.end()


def test_before_init_paths_raise_and_a_disabled_run_records_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paths before init() raise RunStateError; a no_op Run gives a temporary outputs
    directory and records nothing."""
    with pytest.raises(RunStateError, match=r"tracking\.init"):
        tracking.get_outputs_path()
    with pytest.warns(TrackingWarning, match="before tracking.init"):
        tracking.log_file_ref("missing.txt")
    created = tracking.get_or_create_run(None)  # none current: it starts one
    assert created.polytrack_run is polytrack.current_run()
    created.end()
    run = tracking.Run(no_op=True)
    assert isinstance(run.polytrack_run, DisabledRun)
    outputs = Path(run.get_outputs_path())
    assert outputs.is_dir() and home not in outputs.parents
    run.log_metrics(step=0, loss=1.0)
    run.log_image(b"", name="ignored")  # a disabled run drops media unread
    run.end()
    assert [path.name for path in (home / "runs").iterdir()] == [created.run_uuid]


def test_an_object_array_is_hashed_by_its_elements(home: Path) -> None:
    """log_data_ref(content=) of ragged sequences (an object array, as Keras' imdb gives)
    records a hash of the elements' values: equal values, equal hashes; others differ."""
    import numpy as np

    def ragged(*rows: list[int]) -> Any:
        array = np.empty(len(rows), dtype=object)
        array[:] = [list(row) for row in rows]
        return array

    run = tracking.init(project="p", **QUIET)
    first = tracking.log_data_ref("a", content=ragged([1, 2], [3]))
    same = tracking.log_data_ref("b", content=ragged([1, 2], [3]))
    other = tracking.log_data_ref("c", content=ragged([1, 2], [4]))
    assert first is not None and same is not None and other is not None
    assert first.digest == same.digest != other.digest
    run.end()
