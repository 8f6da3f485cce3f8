"""`polytrack artifacts ls|get`: a real run's artifacts listed and fetched through `main(argv)`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from attrs import frozen

import polytrack
from _cli import cli
from polytrack.store.blobs import blob_path


@frozen
class Logged:
    """A store with one run that logged a model file and a directory."""

    home: Path
    run_id: str
    model: bytes
    data: dict[str, bytes]


@pytest.fixture
def logged(home: Path, tmp_path: Path) -> Logged:
    model = b"weights" * 300
    (tmp_path / "model.pt").write_bytes(model)
    data = {"train.csv": b"x,y\n1,2\n", "nested/vocab.txt": b"a b c"}
    for rel, content in data.items():
        (tmp_path / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / rel).write_bytes(content)
    run = polytrack.init(project="mnist", name="cli", dir=home, capture=False)
    run.log_model(tmp_path / "model.pt", "classifier", framework="pytorch")
    run.log_artifact(tmp_path / "data", role="input", kind="dataset")
    run.finish()
    return Logged(home, run.id, model, data)


def test_ls_lists_name_kind_role_size_files_and_digest(logged: Logged) -> None:
    """The table has one row per artifact, sizes readable, digests shortened."""
    result = cli("artifacts", "ls", logged.run_id, "--home", str(logged.home))
    assert result.code == 0, result.err
    header, first, second = result.out.splitlines()
    assert header.split() == ["name", "kind", "role", "size", "files", "digest"]
    digest = hashlib.sha256(logged.model).hexdigest()
    assert first.split() == ["classifier", "model", "output", "2.1", "KiB", "1", digest[:12]]
    assert second.split()[:6] == ["data", "dataset", "input", "13", "B", "2"]


def test_ls_json_gives_whole_records(logged: Logged) -> None:
    """--json prints every field, the files of each artifact included."""
    result = cli("artifacts", "ls", logged.run_id, "--json", "--home", str(logged.home))
    assert result.code == 0, result.err
    model, data = json.loads(result.out)
    assert model["framework"] == "pytorch" and model["size"] == len(logged.model)
    assert sorted(f["path"] for f in data["files"]) == sorted(logged.data)
    assert data["digest"].startswith("sha256:") and data["role"] == "input"


def test_get_writes_a_file_and_prints_its_path(logged: Logged, tmp_path: Path) -> None:
    """get writes DIR/<file name> (default DIR: the working directory) and prints it."""
    result = cli("artifacts", "get", logged.run_id, "classifier", "--home", str(logged.home))
    assert result.code == 0, result.err
    assert Path(result.out.strip()).resolve() == tmp_path / "model.pt"
    assert (tmp_path / "model.pt").read_bytes() == logged.model


def test_get_rebuilds_a_directory(logged: Logged, tmp_path: Path) -> None:
    """A directory comes back as DIR/<name>/ with its nested files."""
    out = tmp_path / "restored"
    result = cli(
        "artifacts", "get", logged.run_id[:4], "data", "--dir", str(out), "--home", str(logged.home)
    )
    assert result.code == 0, result.err
    assert result.out.strip() == str(out / "data")
    found = {
        p.relative_to(out / "data").as_posix(): p.read_bytes()
        for p in (out / "data").rglob("*")
        if p.is_file()
    }
    assert found == logged.data


def test_errors_become_exit_codes(logged: Logged, tmp_path: Path) -> None:
    """No such run or artifact: 3; a corrupt blob: 1, with the reason."""
    home = str(logged.home)
    missing_run = cli("artifacts", "get", "nope", "classifier", "--home", home)
    assert missing_run.code == 3 and "nope" in missing_run.err
    no_store = cli("artifacts", "ls", "nope", "--home", str(tmp_path / "nowhere"))
    assert no_store.code == 3 and "no store" in no_store.err
    missing = cli("artifacts", "get", logged.run_id, "weights", "--home", home)
    assert missing.code == 3 and "has no artifact 'weights'" in missing.err

    blob = blob_path(logged.home, "sha256:" + hashlib.sha256(logged.model).hexdigest())
    blob.chmod(0o644)
    blob.write_bytes(b"bit rot")
    out = tmp_path / "out"
    corrupt = cli(
        "artifacts", "get", logged.run_id, "classifier", "--dir", str(out), "--home", home
    )
    assert corrupt.code == 1 and "corrupt" in corrupt.err
    assert not (out / "model.pt").exists()


def test_a_run_without_artifacts(home: Path) -> None:
    """ls of a run that logged none says so on stderr and succeeds."""
    run = polytrack.init(dir=home, capture=False)
    run.finish()
    result = cli("artifacts", "ls", run.id, "--home", str(home))
    assert (result.code, result.out) == (0, "")
    assert "has no artifacts" in result.err


def test_help_lists_the_command() -> None:
    """`polytrack --help` and `artifacts --help` describe the subcommands."""
    assert "artifacts" in cli("--help").out
    help_text = cli("artifacts", "get", "--help").out
    assert "--dir" in help_text and "digest" in help_text
