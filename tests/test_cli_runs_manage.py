"""`polytrack runs rm|restore|rename|tag|untag|note`, `runs ls --trash` and `polytrack gc`
through `main(argv)`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polytrack
from _cli import cli


def _finished(home: Path, name: str, tmp_path: Path | None = None) -> str:
    run = polytrack.init(project="p", name=name, dir=home, capture=False)
    run.log_metrics({"loss": 0.5}, step=0)
    if tmp_path is not None:
        (tmp_path / f"{name}.bin").write_bytes(name.encode() * 100)
        run.log_artifact(tmp_path / f"{name}.bin")
    run.finish()
    return run.id


def _ls(home: Path, *more: str) -> list[dict[str, object]]:
    result = cli("runs", "ls", "--json", "--home", str(home), *more)
    assert result.code == 0, result.err
    records: list[dict[str, object]] = json.loads(result.out)
    return records


def test_rename_tag_untag_note(home: Path) -> None:
    run_id = _finished(home, "first")
    result = cli("runs", "rename", "first", "baseline", "--home", str(home))
    assert (result.code, result.out) == (0, f"renamed {run_id} to baseline\n"), result.err
    assert (
        cli("runs", "tag", "baseline", "a", "b", "--home", str(home)).out
        == f"{run_id} tags: a, b\n"
    )
    assert cli("runs", "untag", run_id, "a", "--home", str(home)).code == 0
    assert cli("runs", "note", run_id, "hello", "--home", str(home)).code == 0
    (record,) = _ls(home)
    assert (record["name"], record["tags"], record["notes"]) == ("baseline", ["b"], "hello")
    assert cli("runs", "note", run_id, "", "--home", str(home)).out == f"{run_id} notes cleared\n"


def test_rm_trash_restore_and_purge(home: Path) -> None:
    one = _finished(home, "one")
    _finished(home, "two")
    result = cli("runs", "rm", "one", "--home", str(home))
    assert (result.code, result.out) == (0, f"trashed {one}\n"), result.err
    assert [r["name"] for r in _ls(home)] == ["two"]
    assert [r["id"] for r in _ls(home, "--trash")] == [one]
    table = cli("runs", "ls", "--trash", "--home", str(home))
    assert one in table.out and "two" not in table.out
    assert cli("runs", "restore", one[:6], "--home", str(home)).out == f"restored {one} (one)\n"
    assert sorted(r["name"] for r in _ls(home)) == ["one", "two"]
    refused = cli("runs", "rm", "--purge", one, "--home", str(home))  # no terminal to ask
    assert refused.code == 1 and "--yes" in refused.err
    assert cli("runs", "rm", "--purge", "--yes", one, "--home", str(home)).code == 0
    assert [r["name"] for r in _ls(home)] == ["two"] and _ls(home, "--trash") == []
    empty = cli("runs", "ls", "--trash", "--home", str(home))
    assert empty.err == f"no runs in the trash of the store {home}\n"


def test_rm_of_a_live_run_fails_with_a_message(home: Path) -> None:
    run = polytrack.init(project="p", name="live", dir=home, capture=False)
    try:
        result = cli("runs", "rm", run.id, "--home", str(home))
    finally:
        run.finish()
    assert result.code == 1 and "being recorded" in result.err
    assert [r["id"] for r in _ls(home)] == [run.id]


def test_unknown_run_exits_3(home: Path) -> None:
    _finished(home, "one")
    assert cli("runs", "rename", "nope", "x", "--home", str(home)).code == 3
    assert cli("runs", "restore", "one", "--home", str(home)).code == 3


def test_gc_frees_unreferenced_blobs_and_keeps_trashed_ones(home: Path, tmp_path: Path) -> None:
    kept = _finished(home, "kept", tmp_path)
    trashed = _finished(home, "trashed", tmp_path)
    orphan = home / "blobs" / "sha256" / "ab" / ("c" * 62)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x" * 2048)
    # Blobs written within the grace period (an hour) are kept: these are made old.
    for blob in (home / "blobs" / "sha256").glob("*/*"):
        os.utime(blob, (0, 0))
    assert cli("runs", "rm", trashed, "--home", str(home)).code == 0
    dry = cli("gc", "--dry-run", "--home", str(home))
    assert dry.code == 0, dry.err
    assert dry.out.splitlines()[0] == f"blob sha256:ab{'c' * 62}"
    assert "would free 2.0 KiB: 1 unused blobs" in dry.out and orphan.exists()
    real = cli("gc", "--home", str(home))
    assert "freed 2.0 KiB: 1 unused blobs" in real.out, real.out
    assert not orphan.exists()
    (artifact,) = polytrack.get_run(kept, home=home).artifacts()
    assert artifact.download(tmp_path / "out").read_bytes() == b"kept" * 100
    # Purged, the trashed run's blob is no one's: it goes in the same pass.
    purged = cli("gc", "--older-than", "0s", "--home", str(home))
    assert "1 unused blobs (700 B), 1 trashed runs" in purged.out, purged.out
    assert not (home / "trash" / trashed).exists()
    assert cli("gc", "--home", str(home)).out.endswith("; 1 blobs kept\n")


def test_gc_rejects_a_bad_age(home: Path) -> None:
    result = cli("gc", "--older-than", "soon", "--home", str(home))
    assert result.code == 2 and "30d" in result.err


def test_ls_trash_takes_where_and_order_by(home: Path) -> None:
    for name in ("a", "b", "c"):
        polytrack.delete_run(_finished(home, name), home=home)
    listed = _ls(home, "--trash", "--where", 'name != "b"', "--order-by", "name")
    assert [r["name"] for r in listed] == ["a", "c"]
