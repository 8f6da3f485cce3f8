"""`polytrack run --local` end to end: real processes (tiny Python scripts), runs in a real
store, read back through the public API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_helpers import cli, python_job

import polytrack
from polytrack.cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from polytrack.cli._local import ApiRunMaker
from polytrack.launch.local import run_local_trial
from polytrack.launch.plan import make_plan
from polytrack.settings import Settings

Write = Callable[..., str]

LOGGING = """
import polytrack
run = polytrack.init()
print("training with lr={{ lr }}", flush=True)
polytrack.log_metrics({"loss": {{ lr }} * 2}, step=0)
polytrack.log_outputs(loss={{ lr }} * 2)
polytrack.finish()
"""


def store(environ: dict[str, str]) -> Path:
    return Path(environ["POLYTRACK_HOME"])


def all_runs(environ: dict[str, str]) -> list[polytrack.RunView]:
    return polytrack.runs(home=store(environ))


def by_name(environ: dict[str, str]) -> dict[str, polytrack.RunView]:
    return {run.name: run for run in all_runs(environ)}


def test_a_job_logs_into_the_run_made_for_it(polyaxonfile: Write, environ: dict) -> None:
    """The job's `polytrack.init()` attaches to the run the runner made: its metrics,
    outputs, params and printed output are that run's, and it ends succeeded."""
    path = polyaxonfile(
        "job",
        {
            "kind": "component",
            "name": "hello",
            "inputs": [{"name": "lr", "type": "float", "value": 0.1, "isOptional": True}],
            "run": python_job(LOGGING),
        },
    )
    result = cli("run", "-f", path, "--local", "-P", "lr=0.25", environ=environ)
    assert result.code == EXIT_OK, result.err
    assert "training with lr=0.25" in result.out
    [run] = all_runs(environ)
    assert (run.name, run.status) == ("hello", "succeeded")
    assert run.params == {"lr": 0.25}
    assert run.metrics["loss"].last == 0.5
    assert run.outputs == {"loss": 0.5}
    assert "training with lr=0.25" in [line.text for line in run.logs()]
    assert run.id in result.err


def test_a_grid_matrix_runs_two_at_a_time(
    polyaxonfile: Write, environ: dict, tmp_path: Path
) -> None:
    """A grid matrix with concurrency 2: each run meets its partner (both run at once)
    and never sees more than two running."""
    live = tmp_path / "live"
    live.mkdir()
    script = f"""
import pathlib, sys, time
live = pathlib.Path({str(live)!r})
me = {{{{ index }}}}
(live / f"start-{{me}}").touch()
(live / f"live-{{me}}").touch()
if len(list(live.glob("live-*"))) > 2:
    sys.exit(3)
deadline = time.monotonic() + 60
while not (live / f"start-{{me ^ 1}}").exists():
    if time.monotonic() > deadline:
        sys.exit(4)
    time.sleep(0.02)
(live / f"live-{{me}}").unlink()
"""
    path = polyaxonfile(
        "grid",
        {
            "kind": "operation",
            "matrix": {
                "kind": "grid",
                "concurrency": 2,
                "params": {"index": {"kind": "choice", "value": [0, 1, 2, 3]}},
            },
            "component": {
                "name": "grid",
                "inputs": [{"name": "index", "type": "int"}],
                "run": python_job(script),
            },
        },
    )
    result = cli("run", "-f", path, "--local", environ=environ)
    assert result.code == EXIT_OK, result.err
    runs = by_name(environ)
    assert sorted(runs) == ["grid-0", "grid-1", "grid-2", "grid-3"]
    assert {run.status for run in runs.values()} == {"succeeded"}
    assert sorted(run.params["index"] for run in runs.values()) == [0, 1, 2, 3]


def dag(operations: list[dict], components: list[dict]) -> dict:
    return {
        "kind": "operation",
        "component": {
            "name": "flow",
            "run": {"kind": "dag", "operations": operations, "components": components},
        },
    }


PRODUCER = {
    "name": "produce",
    "outputs": [{"name": "x", "type": "int", "isOptional": True}],
    "run": python_job("import polytrack\npolytrack.init()\npolytrack.log_outputs(x=7)\n"),
}
CONSUMER = {
    "name": "consume",
    "inputs": [{"name": "y", "type": "int"}],
    "run": python_job(
        "import polytrack\npolytrack.init()\n"
        "print('got', {{ y }}, '{{ ops.first.outputs.x }}', flush=True)\n"
        "polytrack.log_outputs(doubled={{ y }} * 2)\n"
    ),
}


def test_a_dag_passes_an_output_to_the_next_operation(polyaxonfile: Write, environ: dict) -> None:
    """`ref: ops.first` + `value: outputs.x` and `{{ ops.first.outputs.x }}` read what the
    upstream run recorded with log_outputs, rendered when the operation is due."""
    path = polyaxonfile(
        "flow",
        dag(
            [
                {"name": "first", "dagRef": "produce"},
                {
                    "name": "second",
                    "dagRef": "consume",
                    "params": {"y": {"ref": "ops.first", "value": "outputs.x"}},
                },
            ],
            [PRODUCER, CONSUMER],
        ),
    )
    result = cli("run", "-f", path, "--local", environ=environ)
    assert result.code == EXIT_OK, result.err
    assert "[second] got 7 7" in result.out
    runs = by_name(environ)
    assert runs["flow-first"].outputs == {"x": 7}
    assert runs["flow-second"].params == {"y": 7}
    assert runs["flow-second"].outputs == {"doubled": 14}


def test_triggers_and_conditions_skip_operations(polyaxonfile: Write, environ: dict) -> None:
    """After a failed operation: the default trigger skips, `one_failed` runs, false
    `conditions` skip, and an operation after a skipped one follows its trigger. Each
    skipped operation has its run, finished `skipped` with the reason as its message,
    its tags, and (conditions decided on the rendered operation) its params."""
    failing = {"name": "fail", "run": python_job("import sys; sys.exit(1)")}
    echo = {"name": "echo", "run": python_job("print('ran', flush=True)")}
    greet = {
        "name": "greet",
        "inputs": [{"name": "who", "type": "str"}],
        "run": python_job("print('hello {{ who }}', flush=True)"),
    }
    path = polyaxonfile(
        "flow",
        dag(
            [
                {"name": "a", "dagRef": "fail"},
                {"name": "b", "dagRef": "echo", "dependencies": ["a"], "tags": ["from-b"]},
                {"name": "c", "dagRef": "echo", "dependencies": ["a"], "trigger": "one_failed"},
                {
                    "name": "d",
                    "dagRef": "greet",
                    "dependencies": ["a"],
                    "trigger": "all_done",
                    "conditions": "{{ ops.a.status == 'succeeded' }}",
                    "params": {"who": {"value": "world"}},
                    "tags": ["from-d"],
                },
                {"name": "e", "dagRef": "echo", "dependencies": ["b"], "trigger": "all_done"},
            ],
            [failing, echo, greet],
        ),
    )
    result = cli("run", "-f", path, "--local", environ=environ)
    assert result.code == EXIT_ERROR  # a failed
    runs = by_name(environ)
    assert sorted(runs) == ["flow-a", "flow-b", "flow-c", "flow-d", "flow-e"]
    assert (runs["flow-a"].status, runs["flow-c"].status) == ("failed", "succeeded")
    assert runs["flow-e"].status == "succeeded"  # all_done: a skipped upstream is done
    assert "b: skipped (trigger all_succeeded: a failed)" in result.err
    assert "d: skipped (conditions" in result.err
    b, d = runs["flow-b"], runs["flow-d"]
    assert (b.status, b.message) == ("skipped", "trigger all_succeeded: a failed")
    assert b.tags == ("from-b",) and b.finished_at is not None
    assert d.status == "skipped" and d.message is not None
    assert d.message.startswith("conditions ") and d.message.endswith(" are false")
    assert d.params == {"who": "world"} and d.tags == ("from-d",)
    skipped = polytrack.runs(home=store(environ), where='status == "skipped"')
    assert sorted(run.name for run in skipped) == ["flow-b", "flow-d"]


def test_a_timeout_fails_the_run(polyaxonfile: Write, environ: dict) -> None:
    """termination.timeout ends the process and records the run failed, saying why."""
    path = polyaxonfile(
        "slow",
        {
            "kind": "operation",
            "termination": {"timeout": 1},
            "component": {"name": "slow", "run": python_job("import time; time.sleep(120)")},
        },
    )
    result = cli("run", "-f", path, "--local", environ=environ)
    assert result.code == EXIT_ERROR
    [run] = all_runs(environ)
    assert run.status == "failed"
    assert run.message == "timeout: ran past termination.timeout (1s)"


def test_retries_start_the_process_again(
    polyaxonfile: Write, environ: dict, tmp_path: Path
) -> None:
    """termination.maxRetries: a failing process is started again, each try an attempt of
    the same run, until it succeeds."""
    counter = tmp_path / "tries"
    script = f"""
import pathlib, sys, polytrack
polytrack.init()
counter = pathlib.Path({str(counter)!r})
tries = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(tries))
print("try", tries, flush=True)
sys.exit(0 if tries == 3 else 1)
"""
    path = polyaxonfile(
        "flaky",
        {
            "kind": "operation",
            "termination": {"maxRetries": 2},
            "component": {"name": "flaky", "run": python_job(script)},
        },
    )
    result = cli("run", "-f", path, "--local", environ=environ)
    assert result.code == EXIT_OK, result.err
    [run] = all_runs(environ)
    assert run.status == "succeeded"
    assert counter.read_text() == "3"
    # The runner's attempt, three of the process, and the one that records the end.
    assert run.attempts == 5
    assert [line.text for line in run.logs() if line.text.startswith("try")] == [
        "try 1",
        "try 2",
        "try 3",
    ]


def test_a_distributed_kind_is_refused(polyaxonfile: Write, environ: dict) -> None:
    """A pytorchjob is not run locally: the message names the kind and Kubernetes, and no
    run is made."""
    path = polyaxonfile(
        "ddp",
        {
            "kind": "component",
            "name": "ddp",
            "run": {
                "kind": "pytorchjob",
                "master": {"replicas": 1, "container": {"image": "pytorch", "command": ["x"]}},
            },
        },
    )
    result = cli("run", "-f", path, "--local", environ=environ)
    assert result.code == EXIT_ERROR
    assert "a pytorchjob is distributed" in result.err
    assert "Kubernetes" in result.err
    assert not (store(environ) / "runs").exists() or not all_runs(environ)


def test_a_container_without_command_needs_an_image(polyaxonfile: Write, environ: dict) -> None:
    """Only args (the image's entrypoint would run them): refused locally without --image,
    before any run is made."""
    path = polyaxonfile(
        "job",
        {
            "kind": "component",
            "name": "job",
            "run": {"kind": "job", "container": {"image": "acme/x", "args": ["--fast"]}},
        },
    )
    result = cli("run", "-f", path, "--local", environ=environ)
    assert result.code == EXIT_ERROR
    assert "the container has no command" in result.err
    assert "pass --image" in result.err
    assert not (store(environ) / "runs").exists() or not all_runs(environ)


def test_image_without_a_container_engine_is_refused(
    polyaxonfile: Write, environ: dict, tmp_path: Path
) -> None:
    """--image with neither docker nor podman on PATH: a clear error, no run."""
    path = polyaxonfile("job", {"kind": "component", "name": "job", "run": python_job("print(1)")})
    environ["PATH"] = str(tmp_path / "empty-bin")
    result = cli("run", "-f", path, "--local", "--image", "python:3.11", environ=environ)
    assert result.code == EXIT_ERROR
    assert "neither docker nor podman is installed" in result.err
    assert not (store(environ) / "runs").exists() or not all_runs(environ)


def test_image_with_an_engine_that_does_not_answer_is_refused(
    polyaxonfile: Write, environ: dict, tmp_path: Path
) -> None:
    """--image with a docker whose daemon is down: the error quotes it, no run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    docker.chmod(0o755)
    path = polyaxonfile("job", {"kind": "component", "name": "job", "run": python_job("print(1)")})
    environ["PATH"] = str(bin_dir)
    result = cli("run", "-f", path, "--local", "--image", "python:3.11", environ=environ)
    assert result.code == EXIT_ERROR
    assert "the container engine does not answer" in result.err
    assert "Cannot connect to the Docker daemon" in result.err
    assert not (store(environ) / "runs").exists() or not all_runs(environ)


def test_image_runs_the_container_through_the_engine(
    polyaxonfile: Write, environ: dict, tmp_path: Path
) -> None:
    """--image with an engine that answers: the process is `docker run` of the image, with
    the command as entrypoint, the run's variables, the context and the store mounted."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    docker = bin_dir / "docker"
    docker.write_text(
        f'#!/bin/sh\nif [ "$1" = info ]; then exit 0; fi\nprintf "%s\\n" "$@" > {calls}\n'
    )
    docker.chmod(0o755)
    path = polyaxonfile(
        "job",
        {
            "kind": "component",
            "name": "job",
            "run": {
                "kind": "job",
                "container": {
                    "image": "acme/train",
                    "command": ["python", "train.py"],
                    "args": ["--out={{ globals.run_outputs_path }}"],
                },
            },
        },
    )
    environ["PATH"] = str(bin_dir)
    result = cli("run", "-f", path, "--local", "--image", "acme/train:1", environ=environ)
    assert result.code == EXIT_OK, result.err
    [run] = all_runs(environ)
    assert run.status == "succeeded"
    argv = calls.read_text().splitlines()
    home = environ["POLYTRACK_HOME"]
    assert argv[:4] == ["run", "--rm", "--name", f"polytrack-{run.id}"]
    assert f"{home}:{home}" in argv
    assert f"{home}/local/{run.id}:/polytrack" in argv
    assert f"POLYTRACK_RUN_ID={run.id}" in argv
    assert argv[-5:] == [
        "--entrypoint",
        "python",
        "acme/train:1",
        "train.py",
        "--out=/polytrack/artifacts/outputs",
    ]


def test_a_service_prints_its_ports(polyaxonfile: Write, environ: dict) -> None:
    """A service runs as a local process; its ports are printed as local URLs."""
    path = polyaxonfile(
        "svc",
        {
            "kind": "component",
            "name": "svc",
            "run": {
                **python_job("print('serving', flush=True)"),
                "kind": "service",
                "ports": [8765],
            },
        },
    )
    result = cli("run", "-f", path, "--local", environ=environ)
    assert result.code == EXIT_OK, result.err
    assert "http://localhost:8765" in result.err
    [run] = all_runs(environ)
    assert run.status == "succeeded"


def _sleepy_runner(
    polyaxonfile: Write, environ: dict, tmp_path: Path, **popen: Any
) -> tuple[subprocess.Popen[bytes], int]:
    """`polytrack run --local` of a job that sleeps for two minutes, once that job has
    started: the runner and the job's pid."""
    pidfile = tmp_path / "pid"
    script = (
        f"import os, pathlib, time\npathlib.Path({str(pidfile)!r}).write_text(str(os.getpid()))\n"
        "time.sleep(120)\n"
    )
    path = polyaxonfile(
        "sleepy", {"kind": "component", "name": "sleepy", "run": python_job(script)}
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "polytrack", "run", "-f", path, "--local"],
        env=environ,
        cwd=tmp_path,
        **popen,
    )
    waiting = threading.Event()
    deadline = time.monotonic() + 60
    try:
        while not pidfile.exists() or not pidfile.read_text():
            assert runner.poll() is None, "the runner ended before its job started"
            assert time.monotonic() < deadline, "the job never started"
            waiting.wait(0.05)
    except BaseException:
        runner.kill()
        runner.wait()
        raise
    return runner, int(pidfile.read_text())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_every_process_and_records_stopped(
    polyaxonfile: Write, environ: dict, tmp_path: Path, signum: signal.Signals
) -> None:
    """SIGINT (Ctrl-C) or SIGTERM to the runner: the job's process is gone, the run is
    stopped, and the runner exits 130."""
    runner, child = _sleepy_runner(
        polyaxonfile,
        environ,
        tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A background shell starts its children with SIGINT ignored: give it back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        runner.send_signal(signum)
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == EXIT_INTERRUPTED, err.decode()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    [run] = all_runs(environ)
    assert run.status == "stopped"
    assert run.message == "stopped: interrupted"


def _alive(pid: int) -> bool:
    """Whether `pid` runs: a zombie (dead, not yet reaped by whoever adopted it) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_runner_leaves_no_process_behind(
    polyaxonfile: Write, environ: dict, tmp_path: Path
) -> None:
    """SIGKILL to the runner (nothing of it runs on): its job's process dies with it."""
    runner, child = _sleepy_runner(
        polyaxonfile, environ, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        waiting = threading.Event()
        runner.kill()
        runner.wait()
        deadline = time.monotonic() + 30
        while _alive(child) and time.monotonic() < deadline:
            waiting.wait(0.05)
        assert not _alive(child), "the job's process outlived its runner"
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if _alive(child):
            os.killpg(child, signal.SIGKILL)  # its own group (start_new_session)


def test_trials_run_concurrently_through_the_seam(polyaxonfile: Write, environ: dict) -> None:
    """run_local_trial from several threads: each trial its own run, with its params and
    parent, read back from the store."""
    path = polyaxonfile(
        "job",
        {
            "kind": "component",
            "name": "trial",
            "inputs": [{"name": "lr", "type": "float"}],
            "run": python_job(LOGGING),
        },
    )
    plan = make_plan([path], {"lr": "0.5"})
    maker = ApiRunMaker(Settings.from_env(environ))
    outcomes = {}

    def trial(index: int) -> None:
        outcomes[index] = run_local_trial(
            plan,
            {"lr": index / 10},
            runs=maker,
            name=f"trial-{index}",
            parent_run_id="study01",
            environ=environ,
            key=str(index),
        )

    threads = [threading.Thread(target=trial, args=(i,)) for i in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {o.status for o in outcomes.values()} == {"succeeded"}
    for index, outcome in outcomes.items():
        run = polytrack.get_run(outcome.run_id, home=store(environ))
        assert run.name == f"trial-{index}"
        assert run.params == {"lr": index / 10}
        assert run.metrics["loss"].last == pytest.approx(index / 5)
        assert "parent:study01" in run.tags


def test_a_join_feeds_a_list_param_from_the_store(polyaxonfile: Write, environ: dict) -> None:
    """`joins` select runs of the store (Polyaxon's query syntax is translated into the
    where-language), sorted, and gather each one's output into a list param."""
    scored = {
        "name": "scored",
        "inputs": [{"name": "loss", "type": "float"}],
        "run": python_job(
            "import polytrack\npolytrack.init()\n"
            "polytrack.log_metrics({'loss': {{ loss }}})\npolytrack.log_outputs(loss={{ loss }})\n"
        ),
    }
    report = {
        "name": "report",
        "inputs": [{"name": "losses", "type": "float", "isList": True}],
        "run": python_job("print('losses', {{ losses }}, flush=True)"),
    }
    path = polyaxonfile(
        "flow",
        dag(
            [
                {"name": "a", "dagRef": "scored", "params": {"loss": {"value": 0.5}}},
                {"name": "b", "dagRef": "scored", "params": {"loss": {"value": 0.2}}},
                {"name": "c", "dagRef": "scored", "params": {"loss": {"value": 3}}},
                {
                    "name": "report",
                    "dagRef": "report",
                    "dependencies": ["a", "b", "c"],
                    "joins": [
                        {
                            "query": "metrics.loss:<1, status:succeeded",
                            "sort": "metrics.loss",
                            "params": {"losses": {"value": "outputs.loss"}},
                        }
                    ],
                },
            ],
            [scored, report],
        ),
    )
    result = cli("run", "-f", path, "--local", environ=environ)
    assert result.code == EXIT_OK, result.err
    assert "[report] losses [0.2, 0.5]" in result.out
    assert by_name(environ)["flow-report"].params == {"losses": [0.2, 0.5]}


def test_inits_check_out_the_working_tree_with_its_diff_and_write_files(
    polyaxonfile: Write, environ: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A git init of the repository the command runs in clones this working tree at its
    commit with the uncommitted diff (not its unreachable remote); a file init is
    written, an artifact copied from a local path; the process runs in the checkout."""
    from _git import git

    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "remote", "add", "origin", "https://git.invalid/acme/proj.git")
    (repo / "data.txt").write_text("committed\n")
    git(repo, "add", "data.txt")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "data.txt").write_text("uncommitted\n")
    weights = tmp_path / "weights.bin"
    weights.write_text("w1")
    monkeypatch.chdir(repo)
    script = (
        "import os, pathlib\n"
        "print('cwd', pathlib.Path.cwd().name, flush=True)\n"
        "print('data', pathlib.Path('data.txt').read_text().strip(), flush=True)\n"
        "print('file', pathlib.Path('{{ globals.context_path }}/files/cfg.ini').read_text())\n"
        "print('weights', pathlib.Path('{{ globals.run_artifacts_path }}/w.bin').read_text())\n"
    )
    path = polyaxonfile(
        "job",
        {
            "kind": "component",
            "name": "job",
            "run": {
                **python_job(script),
                "init": [
                    {"git": {"url": "git@git.invalid:acme/proj.git"}},
                    {"file": {"filename": "cfg.ini", "content": "[a]"}},
                    {"artifacts": {"files": [[str(weights), "w.bin"]]}},
                ],
            },
        },
    )
    result = cli("run", "-f", path, "--local", environ=environ)
    assert result.code == EXIT_OK, result.err
    assert result.out.splitlines()[:4] == [
        "cwd proj",
        "data uncommitted",
        "file [a]",
        "weights w1",
    ]
