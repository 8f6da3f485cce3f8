"""Changes made to a recorded run reach a server it was synced to (the in-memory backend)."""

from __future__ import annotations

from pathlib import Path

import polytrack
from _cli import cli
from polytrack.sync.backends.memory import InMemoryBackend


def test_changes_and_trash_reach_the_backend(home: Path) -> None:
    uri = f"memory://manage-{home.name}"
    backend = InMemoryBackend.from_uri(uri)
    run = polytrack.init(project="p", name="first", dir=home, capture=False, tags=["a"])
    run.log_metrics({"loss": 0.5}, step=0)
    run.finish()

    def sync() -> None:
        result = cli("sync", "--all", "--yes", "--backend", uri, "--home", str(home))
        assert result.code == 0, result.err

    sync()
    remote = backend.runs[run.id]
    assert (remote.tags, remote.name, remote.deleted) == (["a"], None, False)
    polytrack.rename_run(run.id, "baseline", home=home)
    polytrack.tag_run(run.id, "best", home=home)
    polytrack.untag_run(run.id, "a", home=home)
    polytrack.set_note(run.id, "why", home=home)
    sync()
    assert (remote.name, remote.tags, remote.notes) == ("baseline", ["best"], "why")
    polytrack.delete_run(run.id, home=home)
    sync()  # the trashed run is sent too: it was sent here before
    assert remote.deleted
    polytrack.restore_run(run.id, home=home)
    sync()
    assert not remote.deleted
    assert remote.metrics["loss"] == [(0, 0.5, remote.metrics["loss"][0][2])]  # sent once


def test_a_changes_log_leaves_the_live_attempt_live_for_the_sync_tail(home: Path) -> None:
    """The tail reads a live attempt only up to its first empty slot (a record may still
    be filled in there); the changes log, numbered 999, is no attempt and must not make
    attempt 0 look finished, which would take the empty slot as a torn record."""
    from polytrack.store.journal import HEADER_SIZE, POINT_SIZE
    from polytrack.store.tail import JournalTail, Position

    run = polytrack.init(project="p", name="live", dir=home, capture=False)
    try:
        for step in range(3):
            run.log_metrics({"loss": float(step)}, step=step)
        segment = home / "runs" / run.id / "points-000-000-00000.seg"
        with segment.open("r+b") as file:  # slot 1 as a writer that has not finished it
            file.seek(HEADER_SIZE + POINT_SIZE + POINT_SIZE - 2)
            file.write(b"\0\0")
        polytrack.tag_run(run.id, "while-live", home=home)
        piece = JournalTail(home / "runs" / run.id).read(Position(), live=True)
        assert [chunk.steps.tolist() for chunk in piece.chunks] == [[0]]
    finally:
        run.finish()
