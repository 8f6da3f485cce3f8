"""Comparing runs: real runs on two commits of a real repository, with different params,
data and packages, compared through `polytrack.compare`, `runs compare` and `runs diff`."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import pytest
from attrs import frozen

import polytrack
from _git import git
from polytrack.capture.environment import capture_environment
from polytrack.cli import main
from polytrack.errors import InvalidInputError
from polytrack.history.compare import ABSENT, Comparison, identical_metrics
from polytrack.models import HardwareState
from polytrack.run import Run

GiB = 1024**3


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with one commit, and the cwd in it."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("print('one')\n")
    git(root, "add", "train.py")
    git(root, "commit", "-qm", "first")
    monkeypatch.chdir(root)
    return root


def record(
    home: Path,
    name: str,
    *,
    params: Mapping[str, object],
    data: bytes,
    packages: Mapping[str, str | None],
    memory: int = 16 * GiB,
    losses: Sequence[float] = (1.0, 0.5),
) -> str:
    """A finished run: its params, a data ref to `data`, its losses, and the environment
    this interpreter has with `packages` changed (None removes one) and `memory` of RAM."""
    run = polytrack.init(
        dir=home,
        name=name,
        params=params,
        capture={"environment": False, "hardware": False, "logs": False, "system": False},
    )
    assert isinstance(run, Run)
    env = capture_environment(allowlist=(), cache_dir=run.settings.cache_dir)
    installed = {**env.packages, **packages}
    changed = {key: value for key, value in installed.items() if value is not None}
    run._writer.append_event(attrs.evolve(env, packages=changed))
    run._writer.append_event(HardwareState("Test CPU", 8, 4, memory))
    source = home.parent / "data" / f"{name}.csv"  # outside the repository
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(data)
    run.log_data_ref("train", source)
    for step, loss in enumerate(losses):
        run.log_metrics({"loss": loss}, step=step)
    run.finish()
    return run.id


@frozen
class Pair:
    """Run `a` on the first commit, `b` on the second: lr, data, packages, memory differ."""

    home: Path
    a: str
    b: str
    commit_a: str
    commit_b: str


@pytest.fixture
def pair(repo: Path, home: Path) -> Pair:
    commit_a = git(repo, "rev-parse", "HEAD")
    a = record(
        home,
        "baseline",
        params={"lr": 0.1, "epochs": 10, "opt": "adam"},
        data=b"x\n1\n",
        packages={"numpy": "1.26.0", "oldpkg": "1.0"},
        losses=(1.0, 0.5),
    )
    (repo / "train.py").write_text("print('two')\n")
    git(repo, "commit", "-qam", "second")
    b = record(
        home,
        "tuned",
        params={"lr": 0.01, "epochs": 10, "opt": "adam", "warmup": 5},
        data=b"x\n2\n",
        packages={"numpy": "2.0.0", "oldpkg": None, "newpkg": "0.1"},
        memory=32 * GiB,
        losses=(1.0, 0.25, 0.2),
    )
    return Pair(home, a, b, commit_a, git(repo, "rev-parse", "HEAD"))


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def rows(section: Sequence[object]) -> dict[str, tuple[object, ...]]:
    return {row.key: row.values for row in section}  # type: ignore[attr-defined]


# -- polytrack.compare ------------------------------------------------------------------


def test_params_side_by_side_differing_first(pair: Pair) -> None:
    """Differing params come first, each with one value per run; a param one run lacks
    is ABSENT there, not None."""
    comparison = polytrack.compare("baseline", "tuned", home=pair.home)
    assert [run.id for run in comparison.runs] == [pair.a, pair.b]
    assert [(row.key, row.values, row.differs) for row in comparison.params] == [
        ("lr", (0.1, 0.01), True),
        ("warmup", (ABSENT, 5), True),
        ("epochs", (10, 10), False),
        ("opt", ("adam", "adam"), False),
    ]
    assert comparison.params[1].change == "added"


def test_metric_summaries_per_run(pair: Pair) -> None:
    """Each metric has last, min, max and count per run; bit-equal last values do not
    differ, and system metrics are left out unless asked for."""
    comparison = polytrack.compare(pair.a, pair.b, home=pair.home)
    (loss,) = comparison.metrics
    first, second = loss.summaries
    assert first is not None and second is not None
    assert (first.last, first.min, first.max, first.count) == (0.5, 0.5, 1.0, 2)
    assert (second.last, second.min, second.max, second.count) == (0.2, 0.2, 1.0, 3)
    assert loss.differs


def test_snapshot_changes_commit_data_packages_hardware(pair: Pair) -> None:
    """Commit, data hash, package versions (added, removed, changed) and memory differ;
    Python and the CPU do not."""
    comparison = polytrack.compare(pair.a, pair.b, home=pair.home)
    code = rows(comparison.code)
    assert code["commit"] == (pair.commit_a, pair.commit_b)
    assert code["dirty"] == (False, False) and code["uncommitted"] == (None, None)
    assert not comparison.same_commit and not comparison.on_first_commit(1)
    data = rows(comparison.data)
    assert (
        list(data) == ["train (input data)"]
        and data["train (input data)"][0] != (data["train (input data)"][1])
    )
    changes = {row.key: (row.change, row.values) for row in comparison.packages if row.differs}
    assert changes == {
        "newpkg": ("added", (ABSENT, "0.1")),
        "numpy": ("changed", ("1.26.0", "2.0.0")),
        "oldpkg": ("removed", ("1.0", ABSENT)),
    }
    assert len(comparison.packages) > 10  # the rest of this interpreter's, the same
    env = {row.key: row for row in comparison.environment}
    assert not env["python"].differs
    hardware = {row.key: row for row in comparison.hardware}
    assert hardware["memory"].values == (16 * GiB, 32 * GiB)
    assert not hardware["cpu"].differs


def test_differences_keep_only_what_differs(pair: Pair) -> None:
    """`differences()` drops every row whose values agree, in every section."""
    diff = polytrack.compare(pair.a, pair.b, home=pair.home).differences()
    assert [row.key for row in diff.params] == ["lr", "warmup"]
    assert [row.key for row in diff.packages] == ["newpkg", "numpy", "oldpkg"]
    assert [row.key for row in diff.hardware] == ["memory"]
    assert {row.key for row in diff.code} == {"commit"}
    assert not diff.environment
    sections = [diff.params, diff.code, diff.data, diff.packages, diff.hardware, diff.metrics]
    assert all(row.differs for section in sections for row in section)


def test_same_commit_uncommitted_changes_are_diffed(repo: Path, home: Path) -> None:
    """Two runs on one commit with different uncommitted edits: the comparison says the
    patches differ and shows a unified diff from one stored patch to the other."""
    runs = []
    for text in ("print('c')", "print('d')"):
        (repo / "train.py").write_text(text + "\n")
        runs.append(record(home, text[7], params={"lr": 0.1}, data=b"same", packages={}))
    comparison = polytrack.compare(*runs, home=home)
    assert comparison.same_commit and comparison.on_first_commit(1)
    assert rows(comparison.code)["uncommitted"][0] != rows(comparison.code)["uncommitted"][1]
    patch = comparison.patch_diff(1)
    assert patch is not None
    assert f"--- {runs[0]}/uncommitted.patch" in patch
    assert "-+print('c')" in patch.splitlines() and "++print('d')" in patch.splitlines()
    assert comparison.to_dict()["patch_diffs"] == {runs[1]: patch}


def test_compare_needs_two_runs(pair: Pair) -> None:
    """One run is nothing to compare with: InvalidInputError."""
    with pytest.raises(InvalidInputError, match="two runs"):
        polytrack.compare(pair.a, home=pair.home)


# -- identical_metrics ------------------------------------------------------------------


def _metrics_run(home: Path, name: str, points: Mapping[str, Sequence[tuple[int, float]]]) -> str:
    run = polytrack.init(dir=home, name=name, capture=False)
    for key, series in points.items():
        for step, value in series:
            run.log_metrics({key: value}, step=step)
    run.finish()
    return run.id


def test_identical_metrics_bit_for_bit_or_how_far_apart(home: Path) -> None:
    """Runs logging the same values (NaN included) are identical; otherwise each metric
    says its largest difference, NaN against a number being infinite, and why."""
    nan = math.nan
    same = {"loss": [(0, 1.0), (1, nan)], "acc": [(0, 0.5)]}
    a = _metrics_run(home, "a", same)
    b = _metrics_run(home, "b", same)
    check = identical_metrics(a, b, home=home)
    assert check.identical and check.summary() == "identical (2 metrics, full histories)"

    c = _metrics_run(home, "c", {"loss": [(0, 1.25), (1, 2.0)], "lr": [(0, 0.1)]})
    check = identical_metrics(a, c, home=home)
    deltas = {delta.key: delta for delta in check.deltas}
    assert not check.identical
    assert deltas["loss"].max_abs_diff == math.inf and deltas["loss"].points == (2, 2)
    assert deltas["acc"].note == f"only in {a}" and deltas["acc"].max_abs_diff is None
    assert deltas["lr"].note == f"only in {c}"
    assert deltas["acc"].last == (0.5, None) and deltas["lr"].last == (None, 0.1)
    assert deltas["loss"].last[1] == 2.0 and math.isnan(deltas["loss"].last[0] or 0.0)

    d = _metrics_run(home, "d", {"loss": [(0, 1.5)], "acc": [(0, 0.5), (1, 0.75)]})
    deltas = {delta.key: delta for delta in identical_metrics(a, d, home=home).deltas}
    assert deltas["loss"].max_abs_diff == 0.5 and deltas["loss"].note == (
        "steps differ (2 vs 1 points)"
    )
    last_only = identical_metrics(b, d, history=False, home=home)
    assert not last_only.history
    assert {delta.key: delta.identical for delta in last_only.deltas} == {
        "acc": False,
        "loss": False,
    }
    assert {delta.key: delta.last for delta in last_only.deltas}["acc"] == (0.5, 0.75)
    assert "2 of 2 metrics differ (last values)" in last_only.summary()


# -- the commands -----------------------------------------------------------------------


def test_runs_compare_prints_every_section(pair: Pair) -> None:
    """`runs compare` prints runs, params (differing marked *), metrics, code, data, the
    packages that differ and how many are the same, environment and hardware."""
    code, out, _ = cli("runs", "compare", pair.a, pair.b, "--home", str(pair.home))
    assert code == 0
    lines = out.splitlines()
    titles = [line.split(" (")[0] for line in lines if line and not line.startswith(" ")]
    assert titles == [
        "runs",
        "params",
        "metrics",
        "code",
        "data",
        "packages",
        "environment",
        "hardware",
    ]
    assert "params (2 of 4 differ)" in lines
    lr = next(line for line in lines if " lr " in line)
    assert lr.split() == ["*", "lr", "0.1", "0.01"]
    epochs = next(line for line in lines if " epochs " in line)
    assert epochs.split() == ["epochs", "10", "10"]
    assert any(line.split() == ["*", "numpy", "1.26.0", "2.0.0"] for line in lines)
    assert any(line.split() == ["*", "memory", "16.0", "GiB", "32.0", "GiB"] for line in lines)
    assert any(line.split()[:3] == ["*", "commit", pair.commit_a[:12]] for line in lines)

    code, out, _ = cli("runs", "compare", pair.a, pair.b, "--json", "--home", str(pair.home))
    data = json.loads(out)
    assert code == 0 and [run["id"] for run in data["runs"]] == [pair.a, pair.b]
    assert data["params"][1] == {"key": "warmup", "values": {pair.b: 5}, "differs": True}


def test_runs_diff_shows_only_the_differences(pair: Pair) -> None:
    """`runs diff A B` prints `- ` lines for A and `+ ` lines for B, section by section,
    and nothing that is the same."""
    code, out, _ = cli("runs", "diff", "baseline", "tuned", "--home", str(pair.home))
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == [f"--- run {pair.a}  baseline", f"+++ run {pair.b}  tuned"]
    for expected in (
        "@@ params @@",
        "- lr: 0.1",
        "+ lr: 0.01",
        "+ warmup: 5",
        "@@ metrics @@",
        "- loss: last 0.5, min 0.5, max 1, 2 points",
        "+ loss: last 0.2, min 0.2, max 1, 3 points",
        "@@ packages @@",
        "- numpy: 1.26.0",
        "+ numpy: 2.0.0",
        "+ newpkg: 0.1",
        "- oldpkg: 1.0",
        "@@ code @@",
        f"- commit: {pair.commit_a}",
        f"+ commit: {pair.commit_b}",
        f"  (git diff {pair.commit_a} {pair.commit_b} shows the committed changes)",
        "@@ hardware @@",
        "- memory: 16.0 GiB",
        "+ memory: 32.0 GiB",
    ):
        assert expected in lines, expected
    data = [line for line in lines if line.startswith(("- train", "+ train"))]
    assert len(data) == 2 and all("sha256:" in line for line in data)
    assert not any("epochs" in line or "opt:" in line or "python" in line for line in lines)
    assert "@@ environment @@" not in lines and "@@ uncommitted changes @@" not in lines

    code, out, _ = cli("runs", "diff", pair.a, pair.b, "--json", "--home", str(pair.home))
    assert code == 0
    assert [row["key"] for row in json.loads(out)["params"]] == ["lr", "warmup"]


def test_runs_diff_of_runs_alike_prints_nothing(repo: Path, home: Path) -> None:
    """Two runs with the same params, data, metrics, code and environment: no output,
    and a note on stderr."""
    a = record(home, "one", params={"lr": 0.1}, data=b"same", packages={})
    b = record(home, "two", params={"lr": 0.1}, data=b"same", packages={})
    comparison: Comparison = polytrack.compare(a, b, home=home)
    assert not comparison.differences().params
    code, out, err = cli("runs", "diff", a, b, "--home", str(home))
    assert (code, out) == (0, "")
    assert err == f"runs {a} and {b} do not differ\n"


def test_runs_diff_on_one_commit_includes_the_patch_diff(repo: Path, home: Path) -> None:
    """On the same commit, the diff ends with the unified diff of the stored patches."""
    runs = []
    for text in ("print('c')", "print('d')"):
        (repo / "train.py").write_text(text + "\n")
        runs.append(record(home, text[7], params={"lr": 0.1}, data=b"same", packages={}))
    code, out, _ = cli("runs", "diff", *runs, "--home", str(home))
    assert code == 0
    lines = out.splitlines()
    start = lines.index("@@ uncommitted changes @@")
    assert lines[start + 1 : start + 3] == [
        f"--- {runs[0]}/uncommitted.patch",
        f"+++ {runs[1]}/uncommitted.patch",
    ]
    assert "-+print('c')" in lines and "++print('d')" in lines
    assert "@@ code @@" in lines and not any(line.startswith("- commit") for line in lines)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("runs", "compare", "baseline"), 2),
        (("runs", "diff", "baseline"), 2),
        (("runs", "diff", "baseline", "no-such-run"), 3),
    ],
)
def test_command_errors_become_exit_codes(pair: Pair, argv: tuple[str, ...], expected: int) -> None:
    """Too few runs is a usage error (2); a run that is not there exits 3."""
    code, out, err = cli(*argv, "--home", str(pair.home))
    assert code == expected and not out and err
