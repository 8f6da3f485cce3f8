"""`polytrack reproduce`: a real training script recorded in a real git repository, its code
checked out again, its data and environment compared, and the run repeated bit for bit."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np
import pytest
import yaml

import polytrack
from _git import GIT_ENV, git
from polytrack import cli
from polytrack.errors import InvalidInputError
from polytrack.history.compare import identical_metrics
from polytrack.history.reproduce import (
    PARAMS_FILE,
    ReproduceError,
    check_data,
    checkout,
    environment_drift,
    plan_rerun,
)
from polytrack.history.reproduce_spec import polyaxonfile
from polytrack.history.runs import RunView
from polytrack.models import EnvironmentState, RunLinked
from polytrack.settings import Settings
from polytrack.store.reader import read_run_files

# Linear regression by gradient descent: seeded noise on the start weights, data from a
# CSV file outside the repository, start weights from a tracked binary file. SCALE and
# the weights are changed after the commit, so only commit + diff gives these numbers.
TRAIN = """\
import argparse
import os
import sys

import numpy as np

import polytrack

SCALE = {scale}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--api-token")
    args = parser.parse_args()
    if args.api_token is not None and args.api_token != "s3cret":
        sys.exit("wrong token")
    polytrack.seed_everything(7)
    params = {{"lr": args.lr, "epochs": args.epochs, "model": {{"scale": SCALE}}}}
    run = polytrack.init(project="repro", params=params)
    polytrack.log_data_ref("train", args.data)
    table = np.loadtxt(args.data, delimiter=",")
    x, y = table[:, :-1] * SCALE, table[:, -1]
    w = np.fromfile("weights.bin", dtype="<f8") + np.random.normal(size=2) * 0.01
    for epoch in range(args.epochs):
        w = w - args.lr * (x.T @ (x @ w - y)) / len(y)
        loss = float(np.mean((x @ w - y) ** 2))
        run.log_metrics({{"loss": loss, "w0": float(w[0])}}, step=epoch)
    if os.environ.get("TRAIN_EXTRA"):
        run.log_metrics({{"extra": 1.0}})
    run.finish()


main()
"""


@pytest.fixture
def env(tmp_path: Path, home: Path) -> dict[str, str]:
    """The environment of the recorded runs and of `reproduce`: this test's store, no
    captures that only cost time here."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("POLYTRACK_") or k == "POLYTRACK_CACHE_DIR"
    }
    environ.update(
        GIT_ENV,
        HOME=str(tmp_path),
        POLYTRACK_HOME=str(home),
        POLYTRACK_CAPTURE_SYSTEM="0",
        POLYTRACK_CAPTURE_HARDWARE="0",
        POLYTRACK_CAPTURE_LOGS="0",
        PYTHONHASHSEED="0",
    )
    return environ


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The training set, a CSV file outside the repository."""
    path = tmp_path / "data" / "train.csv"
    path.parent.mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 2))
    y = x @ np.array([1.5, -2.0]) + rng.normal(size=24) * 0.1
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", fmt="%.6f")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with the training script committed and pushed to a bare remote, then
    changed (a constant, the binary start weights) without committing."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text(TRAIN.format(scale="1.0"))
    np.array([0.5, -0.25], "<f8").tofile(root / "weights.bin")
    git(root, "add", "train.py", "weights.bin")
    git(root, "commit", "-qm", "train")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(root, "remote", "add", "origin", str(remote))
    git(root, "push", "-q", "origin", "main")
    (root / "train.py").write_text(TRAIN.format(scale="3.0"))
    np.array([0.75, -0.5], "<f8").tofile(root / "weights.bin")
    return root


def record(repo: Path, env: Mapping[str, str], *args: str) -> RunView:
    """Run the training script in `repo` as a user would; return the run it recorded."""
    done = subprocess.run(
        [sys.executable, "train.py", *args], cwd=repo, env=dict(env), capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    return newest(env)


def newest(env: Mapping[str, str]) -> RunView:
    home = Path(env["POLYTRACK_HOME"])
    return max(
        (polytrack.get_run(p.name, home=home) for p in (home / "runs").iterdir()),
        key=lambda run: run.created_at,
    )


def reproduce(env: Mapping[str, str], *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["reproduce", *args], stdout=out, stderr=err, environ=env)
    return code, out.getvalue(), err.getvalue()


def test_rerun_gives_bit_identical_metrics(
    repo: Path, data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """`reproduce --run` checks out commit + diff (binary too), reruns, and says identical."""
    original = record(repo, env, "--data", str(data), "--lr", "0.1")
    # Changed again after the run: the reproduction must not take the tree as it is now.
    (repo / "train.py").write_text(TRAIN.format(scale="5.0"))
    dest = tmp_path / "repro"

    code, out, err = reproduce(env, original.id, "--dir", str(dest), "--run")

    assert code == 0, out + err
    assert "SCALE = 3.0" in (dest / "train.py").read_text()
    assert np.fromfile(dest / "weights.bin", "<f8").tolist() == [0.75, -0.5]
    assert "git-000.diff applied" in out
    assert "identical: 2 metrics, bit for bit at every step" in out
    params = json.loads((dest / PARAMS_FILE).read_text())
    assert params == {"lr": 0.1, "epochs": 6, "model.scale": 3.0}
    assert "  match     train (input file)" in out
    again = newest(env)
    assert again.id != original.id and again.project == "repro"
    assert f"{again.id} (reproduces {original.id})" in out
    for key in ("loss", "w0"):
        assert again.metrics[key].last.hex() == original.metrics[key].last.hex()
        assert again.metrics[key].count == 6
    links = [e for _, e in read_run_files(Path(again.path)).events if isinstance(e, RunLinked)]
    assert [(link.run_id, link.relation) for link in links] == [(original.id, "reproduces")]
    assert again.snapshot().code is not None
    assert again.snapshot().code.argv[1:] == original.snapshot().code.argv[1:]  # type: ignore[union-attr]


def test_the_diff_is_what_makes_the_numbers(
    repo: Path, data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """Without the stored diff the same commit gives other numbers: the comparison shows by
    how much, metric by metric."""
    original = record(repo, env, "--data", str(data))
    (repo / "train.py").write_text(TRAIN.format(scale="1.0"))  # back to the commit
    np.array([0.5, -0.25], "<f8").tofile(repo / "weights.bin")
    assert git(repo, "status", "--porcelain") == ""
    committed = record(repo, env, "--data", str(data))

    comparison = identical_metrics(original, committed)

    assert not comparison.identical
    loss = next(m for m in comparison.deltas if m.key == "loss")
    a = original.history("loss")[1]
    b = committed.history("loss")[1]
    assert loss.max_abs_diff == float(np.max(np.abs(a - b))) > 0
    assert loss.last == (a[-1], b[-1]) and loss.note is None


def test_a_rerun_that_differs_says_by_how_much(
    repo: Path, data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """A rerun on changed data prints, per metric, the largest difference and both last
    values, and names a metric the original alone logged; the command still exits 0."""
    original = record(repo, {**env, "TRAIN_EXTRA": "1"}, "--data", str(data))
    data.write_text(data.read_text().replace("1", "2", 1))

    code, out, err = reproduce(env, original.id, "--dir", str(tmp_path / "r"), "--run")

    assert code == 0, out + err
    again = newest(env)
    check = identical_metrics(original, again)
    loss = next(m for m in check.deltas if m.key == "loss")
    assert loss.max_abs_diff is not None and loss.max_abs_diff > 0
    metrics = out[out.index("\nmetrics\n") :].splitlines()[2:]
    assert metrics == [
        "  3 of 3 metrics differ",
        "  extra  only in the original (last 1.0)",
        f"  loss   max abs difference {loss.max_abs_diff!r} (last "
        f"{original.metrics['loss'].last!r} vs {again.metrics['loss'].last!r})",
        metrics[-1],
    ]
    assert metrics[-1].startswith("  w0     max abs difference ")


def test_changed_and_missing_data_are_named(
    repo: Path, data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """A data file changed since the run is reported as changed by name, a deleted one as
    missing; neither fails the command."""
    original = record(repo, env, "--data", str(data))
    data.write_text(data.read_text().replace("1", "2", 1))

    code, out, _ = reproduce(env, original.id, "--dir", str(tmp_path / "a"))

    assert code == 0
    assert f"  changed   train (input file)  {data}" in out
    data.unlink()
    code, out, _ = reproduce(env, original.id, "--dir", str(tmp_path / "b"))
    assert code == 0
    assert f"  missing   train (input file)  {data}: nothing at the path now" in out


def test_a_changed_file_of_a_directory_is_named(tmp_path: Path, home: Path) -> None:
    """For a directory data ref, the files that changed, went or came are each named."""
    shards = tmp_path / "shards"
    shards.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (shards / name).write_text(name)
    with polytrack.init(dir=home, capture=False) as run:
        run.log_data_ref("shards", shards)
        run.log_data_ref("weights", np.zeros(3))
    (shards / "b.txt").write_text("other")
    (shards / "c.txt").unlink()
    (shards / "d.txt").write_text("new")

    check, in_memory = check_data(polytrack.get_run(run.id, home=home))

    assert check.status == "changed"
    assert [(f.path, f.status) for f in check.files] == [
        ("b.txt", "changed"),
        ("c.txt", "missing"),
        ("d.txt", "added"),
    ]
    assert in_memory.status == "unchecked"
    environ = {"PATH": os.environ["PATH"], "POLYTRACK_CACHE_DIR": os.environ["POLYTRACK_CACHE_DIR"]}
    code, out, _ = reproduce(environ, run.id, "--home", str(home))
    assert code == 1  # recorded without git: nothing to check out
    assert f"  changed   shards (input directory)  {shards}\n    changed b.txt\n" in out
    assert "  unchecked weights (input array): held in memory: no path to check" in out


def test_environment_drift_names_a_package_the_run_had(tmp_path: Path, env: dict[str, str]) -> None:
    """A distribution on the run's path but not on this one is listed as removed."""
    site = tmp_path / "site"
    (site / "fakepkg-1.0.dist-info").mkdir(parents=True)
    script = tmp_path / "plain" / "job.py"
    script.parent.mkdir()
    script.write_text("import polytrack\npolytrack.init(project='plain').finish()\n")
    subprocess.run(
        [sys.executable, str(script)],
        cwd=script.parent,
        env={**env, "PYTHONPATH": str(site)},
        check=True,
        capture_output=True,
    )
    run = newest(env)

    drift = environment_drift(run)

    assert drift.recorded and drift.removed == {"fakepkg": "1.0"}
    assert drift.python is None and drift.changed == {}


def test_environment_drift_between_two_environments(home: Path) -> None:
    """Python, added, removed and changed distributions, each against the run's record."""
    with polytrack.init(dir=home, capture={"environment": True}) as run:
        pass
    view = polytrack.get_run(run.id, home=home)
    recorded = view.snapshot().environment
    assert recorded is not None
    packages = dict(recorded.packages)
    name, version = next(iter(packages.items()))
    packages[name] = version + ".post1"
    removed = list(packages)[-1]
    del packages[removed]
    packages["brand-new"] = "0.1"
    current = attrs.evolve(recorded, python="2.7.18", packages=packages)

    drift = environment_drift(view, current=current)

    assert drift.python == (f"{recorded.python} (cpython)", "2.7.18 (cpython)")
    assert drift.changed == {name: (version, version + ".post1")}
    assert drift.removed == {removed: recorded.packages[removed]}
    assert drift.added == {"brand-new": "0.1"}
    assert isinstance(current, EnvironmentState)


def test_polyaxonfile_loads_with_polytrack_check(
    repo: Path, data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """The Polyaxonfile clones the commit, ships the diff, pins the packages, carries the
    params as inputs, and is valid for `polytrack check`."""
    original = record(repo, env, "--data", str(data), "--lr", "0.1")
    out_file = tmp_path / "repro.yaml"

    code, out, err = reproduce(
        env, original.id, "--dir", str(tmp_path / "r"), "--polyaxonfile", str(out_file)
    )

    assert code == 0, out + err
    checked = io.StringIO()
    assert cli.main(["check", "-f", str(out_file)], stdout=checked, stderr=io.StringIO()) == 0
    text = out_file.read_text()
    commit = git(repo, "rev-parse", "HEAD")
    assert f"revision: {commit}" in text
    assert "SCALE = 3.0" in text  # the diff, shipped as a file
    assert f"numpy=={np.__version__}" in text
    assert "image: python:{}.{}\n".format(*sys.version_info[:2]) in text
    assert "exec python train.py --data" in text

    component = yaml.safe_load(checked.getvalue())["component"]
    inputs = {entry["name"]: entry for entry in component["inputs"]}
    assert inputs["lr"]["value"] == 0.1 and inputs["lr"]["type"] == "float"
    assert inputs["model_scale"]["value"] == 3.0
    (params_file,) = [
        init["file"]["content"]
        for init in component["run"]["init"]
        if "file" in init and init["file"]["filename"] == PARAMS_FILE
    ]
    assert json.loads(params_file) == {"epochs": 6, "lr": 0.1, "model.scale": 3.0}


def test_redacted_arguments_need_their_values(
    repo: Path, data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """A secret in the argv was recorded redacted: `--run` refuses until `--secret-env`
    gives it back, and then reproduces the run."""
    original = record(repo, env, "--data", str(data), "--api-token", "s3cret")
    assert original.snapshot().code.argv[-1] == "[REDACTED]"  # type: ignore[union-attr]

    code, out, err = reproduce(env, original.id, "--dir", str(tmp_path / "a"), "--run")

    assert code == 1
    assert "redacted value(s) ([REDACTED]): give each, in order, with --secret-env" in err
    code, out, err = reproduce(
        {**env, "TOKEN": "s3cret"},
        original.id,
        "--dir",
        str(tmp_path / "b"),
        "--run",
        "--secret-env",
        "TOKEN",
    )
    assert code == 0, out + err
    assert "identical: 2 metrics" in out


def test_a_run_outside_git_cannot_be_rerun(tmp_path: Path, env: dict[str, str]) -> None:
    """The checkout section says the run was not in a repository; `--run` is refused."""
    script = tmp_path / "plain" / "job.py"
    script.parent.mkdir()
    script.write_text("import polytrack\npolytrack.init(project='plain').finish()\n")
    subprocess.run(
        [sys.executable, str(script)], cwd=script.parent, env=env, check=True, capture_output=True
    )
    run = newest(env)

    code, out, err = reproduce(env, run.id, "--dir", str(tmp_path / "r"), "--run")

    assert code == 1
    assert "was not recorded in a git repository (not a git repository)" in out
    assert "refused: there is no checkout to run it in" in out
    assert "polytrack: error: cannot run it again" in err
    with pytest.raises(ReproduceError, match="no commit to check out"):
        plan_rerun(run, tmp_path / "r")
    with pytest.raises(ReproduceError, match="not recorded in a git repository"):
        polyaxonfile(run)


def test_checkout_clones_the_remote_when_the_repository_is_gone(
    repo: Path, data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """With its repository moved away, the run's commit comes from the recorded remote."""
    original = record(repo, env, "--data", str(data))
    repo.rename(tmp_path / "moved")

    done = checkout(original, tmp_path / "clone", environ=env)

    assert done.source == "clone" and done.origin == str(tmp_path / "remote.git")
    assert "SCALE = 3.0" in (tmp_path / "clone" / "train.py").read_text()
    assert any("cloned the remote instead" in note for note in done.notes)
    with pytest.raises(ReproduceError, match="is not empty"):
        checkout(original, tmp_path / "clone", environ=env)


def test_init_links_a_run_to_the_one_it_reproduces(home: Path) -> None:
    """POLYTRACK_REPRODUCES makes init() record RunLinked; a malformed id is refused."""
    environ = {"POLYTRACK_HOME": str(home), "POLYTRACK_REPRODUCES": "abc123"}
    with polytrack.init(capture=False, environ=environ) as run:
        pass
    events = read_run_files(Path(polytrack.get_run(run.id, home=home).path)).events
    links = [e for _, e in events if isinstance(e, RunLinked)]
    assert [(link.run_id, link.relation) for link in links] == [("abc123", "reproduces")]
    with pytest.raises(InvalidInputError, match="POLYTRACK_REPRODUCES must be"):
        Settings.from_env({"POLYTRACK_REPRODUCES": "../escape"})
