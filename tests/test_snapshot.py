"""The snapshot as `init()` records it: what lands in the run, the time budget, switches."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import polytrack
from _git import git
from polytrack import cli
from polytrack.errors import InvalidInputError, TrackingWarning


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with one commit, a remote with a token in its URL, and the cwd in it."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("print('hello')\n")
    git(root, "add", "train.py")
    git(root, "commit", "-qm", "first")
    git(root, "remote", "add", "origin", "https://alice:s3cret@example.com/org/project.git")
    monkeypatch.chdir(root)
    return root


def test_init_records_the_whole_snapshot(repo: Path, home: Path) -> None:
    """git (with the diff as a file), code, environment and hardware are in the run."""
    (repo / "train.py").write_text("print('changed')\n")
    (repo / "notes.txt").write_text("untracked\n")
    run = polytrack.init(dir=home, capture={"logs": False, "system": False})
    run.finish()
    view = polytrack.get_run(run.id, home=home)
    snap = view.snapshot()
    assert snap.git is not None and snap.git.available and not snap.git.partial
    assert snap.git.commit == git(repo, "rev-parse", "HEAD")
    assert snap.git.branch == "main"
    assert snap.git.dirty is True
    assert snap.git.remote is not None and "s3cret" not in snap.git.remote
    assert snap.git.untracked == ("notes.txt",)
    patch = view.diff()
    assert patch is not None and b"+print('changed')" in patch
    assert snap.code is not None and snap.code.cwd == str(repo)
    assert snap.environment is not None and "attrs" in snap.environment.packages
    assert snap.hardware is not None and snap.hardware.cpu_logical == os.cpu_count()
    # Nothing secret anywhere in the run's files.
    for path in Path(view.path).iterdir():
        assert b"s3cret" not in path.read_bytes(), path.name


def test_diff_rebuilds_the_exact_code(repo: Path, home: Path, tmp_path: Path) -> None:
    """The stored diff applied to a clone at the recorded commit gives the files run."""
    (repo / "train.py").write_text("print('edited')\nprint('twice')\n")
    run = polytrack.init(dir=home, capture={"logs": False, "system": False})
    run.finish()
    view = polytrack.get_run(run.id, home=home)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    git(clone, "checkout", "-q", view.snapshot().git.commit)  # type: ignore[union-attr]
    (tmp_path / "p.diff").write_bytes(view.diff() or b"")
    git(clone, "apply", str(tmp_path / "p.diff"))
    assert (clone / "train.py").read_text() == (repo / "train.py").read_text()


def _slow_git(tmp_path: Path, delay: float) -> Path:
    """A `git` first on PATH that waits before running the real one."""
    real = subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip()
    bindir = tmp_path / "slowbin"
    bindir.mkdir()
    script = bindir / "git"
    script.write_text(f'#!/bin/sh\nsleep {delay}\nexec {real} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bindir


def test_init_waits_for_git_no_longer_than_the_budget(
    repo: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow git leaves a partial record (HEAD only) at init(); the complete one follows
    from the background before finish() returns."""
    commit = git(repo, "rev-parse", "HEAD")
    monkeypatch.setenv("PATH", f"{_slow_git(tmp_path, 0.6)}{os.pathsep}{os.environ['PATH']}")
    started = time.perf_counter()
    run = polytrack.init(
        dir=home,
        capture={"logs": False, "system": False, "environment": False, "hardware": False},
        settings=polytrack.Settings.from_env().evolve(capture_budget=0.05),
    )
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5
    partial = polytrack.get_run(run.id, home=home).snapshot().git
    assert partial is not None and partial.partial and partial.dirty is None
    assert partial.commit == commit
    run.finish()
    complete = polytrack.get_run(run.id, home=home).snapshot().git
    assert complete is not None and not complete.partial and complete.dirty is False


def test_finish_does_not_wait_for_a_git_that_never_answers(
    repo: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that ends while git still works keeps the partial record and ends on time."""
    from polytrack.capture import snapshot

    commit = git(repo, "rev-parse", "HEAD")
    monkeypatch.setattr(snapshot, "STOP_WAIT", 0.2)
    monkeypatch.setenv("PATH", f"{_slow_git(tmp_path, 30)}{os.pathsep}{os.environ['PATH']}")
    run = polytrack.init(dir=home, capture={"logs": False, "system": False})
    started = time.perf_counter()
    run.finish()
    assert time.perf_counter() - started < 1.5  # and no thread is left (conftest checks)
    git_state = polytrack.get_run(run.id, home=home).snapshot().git
    assert git_state is not None and git_state.partial and git_state.commit == commit


def test_outside_a_repository_git_is_recorded_unavailable(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not being in a repository is a fact of the run, not a failure."""
    elsewhere = tmp_path / "plain"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = polytrack.init(dir=home, capture={"logs": False, "system": False})
    run.finish()
    git_state = polytrack.get_run(run.id, home=home).snapshot().git
    assert git_state is not None and not git_state.available
    assert git_state.reason


def test_captures_can_be_switched_off(repo: Path, home: Path) -> None:
    """capture=False records no snapshot and starts no thread; single ones by name."""
    run = polytrack.init(dir=home, capture=False)
    assert not [t for t in __import__("threading").enumerate() if t.name.startswith("polytrack-s")]
    run.finish()
    assert polytrack.get_run(run.id, home=home).snapshot() == polytrack.Snapshot()
    run = polytrack.init(dir=home, capture={"git": False, "logs": False, "system": False})
    run.finish()
    snap = polytrack.get_run(run.id, home=home).snapshot()
    assert snap.git is None and snap.code is not None


def test_captures_switched_off_by_environment(
    repo: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POLYTRACK_CAPTURE_<NAME>=0 switches a capture off."""
    for name in ("GIT", "ENVIRONMENT", "HARDWARE", "SYSTEM", "LOGS"):
        monkeypatch.setenv(f"POLYTRACK_CAPTURE_{name}", "0")
    run = polytrack.init(dir=home)
    run.finish()
    snap = polytrack.get_run(run.id, home=home).snapshot()
    assert snap.code is not None
    assert (snap.git, snap.environment, snap.hardware) == (None, None, None)


def test_unknown_capture_names_are_refused(home: Path) -> None:
    """A misspelt capture name is an error naming it, not a silent no-op."""
    with pytest.raises(InvalidInputError, match="'gti'"):
        polytrack.init(dir=home, capture={"gti": False})


def test_seeds_set_before_init_are_recorded_once(home: Path) -> None:
    """seed_everything() before init() is recorded by the next run, not by later ones."""
    polytrack.seed_everything(99)
    first = polytrack.init(dir=home, capture=False)
    first.finish()
    second = polytrack.init(dir=home, capture=False)
    polytrack.seed_everything(5, deterministic=False)
    second.finish()
    seeds = polytrack.get_run(first.id, home=home).snapshot().seeds
    assert seeds is not None and seeds.seed == 99 and "numpy" in seeds.libraries
    later = polytrack.get_run(second.id, home=home).snapshot().seeds
    assert later is not None and later.seed == 5


def test_data_refs_are_recorded_with_manifests(home: Path, tmp_path: Path) -> None:
    """A file and a directory are hashed into the run; the directory's manifest is stored."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.csv").write_text("x,y\n1,2\n")
    (data / "sub" / "b.csv").write_text("x,y\n3,4\n")
    run = polytrack.init(dir=home, capture=False)
    file_ref = run.log_data_ref("train", data / "a.csv")
    dir_ref = polytrack.log_data_ref("all", data, role="output")
    run.finish()
    refs = polytrack.get_run(run.id, home=home).snapshot().data_refs
    assert refs == (file_ref, dir_ref)
    assert file_ref.kind == "file" and file_ref.size == 8 and file_ref.role == "input"
    assert dir_ref.kind == "directory" and dir_ref.files == 2 and dir_ref.role == "output"
    assert dir_ref.manifest_file is not None
    manifest = json.loads((Path(run.dir) / dir_ref.manifest_file).read_text())
    assert sorted(manifest) == ["a.csv", "sub/b.csv"]
    assert manifest["a.csv"][0] == file_ref.digest


def test_bad_data_refs_are_refused_clearly(home: Path, tmp_path: Path) -> None:
    """A missing path or a bad role raises, naming it; nothing recorded is lost."""
    run = polytrack.init(dir=home, capture=False)
    run.log_metrics({"loss": 1.0}, step=0)
    with pytest.raises(InvalidInputError, match=r"nowhere\.csv"):
        run.log_data_ref("train", tmp_path / "nowhere.csv")
    with pytest.raises(InvalidInputError, match="role"):
        run.log_data_ref("train", b"bytes", role="sideways")
    run.finish()
    view = polytrack.get_run(run.id, home=home)
    assert view.metrics["loss"].count == 1 and view.snapshot().data_refs == ()


def test_runs_show_prints_the_snapshot(repo: Path, home: Path) -> None:
    """`runs show` has git, code, environment, hardware, data, system and logs sections;
    --json carries the whole snapshot."""
    run = polytrack.init(dir=home, capture={"logs": False})
    run.log_data_ref("blob", b"abc")
    run.finish()
    out = io.StringIO()
    assert cli.main(["--home", str(home), "runs", "show", run.id], stdout=out) == 0
    text = out.getvalue()
    for section in (
        "\ngit\n",
        "\ncode\n",
        "\nenvironment\n",
        "\nhardware\n",
        "\ndata\n",
        "\nsystem\n",
        "\nlogs (last",
    ):
        assert section in text
    assert git(repo, "rev-parse", "HEAD") in text
    assert "s3cret" not in text
    out = io.StringIO()
    assert cli.main(["--home", str(home), "runs", "show", run.id, "--json"], stdout=out) == 0
    record = json.loads(out.getvalue())
    assert record["snapshot"]["git"]["branch"] == "main"
    assert record["snapshot"]["data_refs"][0]["name"] == "blob"
    assert "numpy" in record["snapshot"]["environment"]["packages"]


def test_a_failing_capture_warns_and_training_goes_on(
    repo: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collector that raises costs its part of the snapshot and one warning, no more."""
    from polytrack.capture import hardware

    def broken(**kwargs: object) -> None:
        raise RuntimeError("no /proc here")

    monkeypatch.setattr(hardware, "capture_hardware", broken)
    with pytest.warns(TrackingWarning, match="hardware"):
        run = polytrack.init(dir=home, capture={"logs": False, "system": False})
        run.log_metrics({"loss": 0.5}, step=0)
        run.finish()
    snap = polytrack.get_run(run.id, home=home).snapshot()
    assert snap.hardware is None and snap.git is not None


@pytest.mark.slow
def test_a_script_records_its_output_and_system_metrics(tmp_path: Path, home: Path) -> None:
    """A real script: its prints and a subprocess's output are in the run's logs, and the
    system sampler recorded at least its first sample."""
    script = tmp_path / "train.py"
    script.write_text(
        "import subprocess, sys, polytrack\n"
        "run = polytrack.init()\n"
        "print('epoch 1 done')\n"
        "subprocess.run(['echo', 'from a child'], check=True)\n"
        "print('to stderr', file=sys.stderr)\n"
        "run.log_metrics({'loss': 0.1}, step=0)\n"
        "run.finish()\n"
    )
    env = {**os.environ, "POLYTRACK_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, str(script), "--api-key", "k"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "epoch 1 done" in done.stdout and "from a child" in done.stdout
    view = polytrack.runs(home=home)[0]
    texts = [(line.stream, line.text) for line in view.logs()]
    assert ("stdout", "epoch 1 done") in texts
    assert ("stdout", "from a child") in texts
    assert ("stderr", "to stderr") in texts
    assert any(key.startswith("system/") for key in view.metrics)
    code = view.snapshot().code
    assert code is not None and code.entrypoint == str(script)
    assert code.argv[1:] == ("--api-key", "[REDACTED]")


@pytest.mark.parametrize("layout", ["untracked file", "untracked directory", "outside"])
def test_runs_show_says_the_entrypoint_is_untracked(
    repo: Path, home: Path, tmp_path: Path, layout: str
) -> None:
    """A clean tree whose script git does not track is not reproducible from the commit:
    `runs show` says so instead of a bare "clean"."""
    script = {
        "untracked file": repo / "new_train.py",
        "untracked directory": repo / "experiments" / "try.py",
        "outside": tmp_path / "elsewhere" / "train.py",
    }[layout]
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        "import polytrack\n"
        f"polytrack.init(dir={str(home)!r}, capture={{'logs': False, 'system': False}})\n"
        "polytrack.finish()\n"
    )
    done = subprocess.run([sys.executable, str(script)], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (view,) = polytrack.runs(home=home)
    out = io.StringIO()
    assert cli.main(["--home", str(home), "runs", "show", view.id], stdout=out) == 0
    expected = {
        "untracked file": "clean; the entrypoint new_train.py is not in the commit",
        "untracked directory": "clean; the entrypoint experiments/try.py is not in the commit",
        "outside": "(outside the repository) is not in the commit",
    }[layout]
    assert expected in out.getvalue(), out.getvalue()


def test_runs_show_keeps_a_tracked_entrypoint_clean(repo: Path, home: Path) -> None:
    (repo / "train.py").write_text(
        "import polytrack\n"
        f"polytrack.init(dir={str(home)!r}, capture={{'logs': False, 'system': False}})\n"
        "polytrack.finish()\n"
    )
    git(repo, "commit", "-qam", "a script")
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=repo, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (view,) = polytrack.runs(home=home)
    out = io.StringIO()
    assert cli.main(["--home", str(home), "runs", "show", view.id], stdout=out) == 0
    assert "branch main, clean\n" in out.getvalue()
