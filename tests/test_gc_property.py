"""`polytrack.gc` over random histories: it frees exactly the blobs no run refers to, and
never one that a live, finished or trashed run refers to."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

import polytrack
from polytrack.store.blobs import blob_path

CONTENTS = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon"]

# One run: which contents it logs as artifacts, and what happens to it afterwards.
_RUN = st.tuples(
    st.sets(st.sampled_from(range(len(CONTENTS))), max_size=3),
    st.sampled_from(["keep", "trash", "trash-restore", "purge", "live"]),
)


def _digest(content: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(content).hexdigest()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    runs=st.lists(_RUN, min_size=1, max_size=4), orphans=st.sets(st.binary(min_size=1), max_size=3)
)
def test_gc_frees_exactly_the_unreferenced_blobs(
    runs: list[tuple[set[int], str]], orphans: set[bytes]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        home, files = Path(folder) / "home", Path(folder) / "files"
        files.mkdir()
        live: list[polytrack.Run] = []
        referenced: set[str] = set()
        try:
            for index, (contents, fate) in enumerate(runs):
                run = polytrack.init(project="p", name=f"r{index}", dir=home, capture=False)
                for choice in sorted(contents):
                    path = files / f"{index}-{choice}.bin"
                    path.write_bytes(CONTENTS[choice])
                    run.log_artifact(path, name=f"a{choice}")
                if fate == "live":
                    for choice in contents:  # copies done, events recorded: see gc's grace
                        run.artifact(f"a{choice}")
                    live.append(run)  # type: ignore[arg-type]  # a later init() finishes it
                else:
                    run.finish()
                if fate in ("trash", "trash-restore", "purge"):
                    polytrack.delete_run(run.id, home=home, purge=fate == "purge")
                if fate == "trash-restore":
                    polytrack.restore_run(run.id, home=home)
                if fate != "purge":
                    referenced.update(_digest(CONTENTS[c]) for c in contents)
            for orphan in orphans:
                path = files / "orphan.bin"
                path.write_bytes(orphan)
                digest = _digest(orphan)
                target = blob_path(home, digest)
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(orphan)
            before = (
                {f"sha256:{p.parent.name}{p.name}" for p in (home / "blobs" / "sha256").glob("*/*")}
                if (home / "blobs").exists()
                else set()
            )
            report = polytrack.gc(grace=0, home=home)
            after = (
                {f"sha256:{p.parent.name}{p.name}" for p in (home / "blobs" / "sha256").glob("*/*")}
                if (home / "blobs").exists()
                else set()
            )
            assert referenced <= after  # nothing a run refers to is gone
            assert set(report.blobs) == before - referenced  # exactly the rest is freed
            assert after == before - set(report.blobs)
        finally:
            for run in live:
                run.finish()


def test_a_blob_within_the_grace_period_is_kept(home: Path, tmp_path: Path) -> None:
    """A live run stores a blob before the event that refers to it: a fresh blob that no
    run refers to yet is kept."""
    fresh = blob_path(home, _digest(b"fresh"))
    fresh.parent.mkdir(parents=True)
    fresh.write_bytes(b"fresh")
    report = polytrack.gc(home=home)
    assert report.blobs == () and report.kept_blobs == 1 and fresh.exists()


def test_storing_bytes_again_refreshes_the_blobs_time(home: Path, tmp_path: Path) -> None:
    """The same bytes logged again reuse the blob; its new mtime keeps gc off it until the
    run has recorded the event that refers to it."""
    import os

    from polytrack.store.blobs import BlobStore

    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    store = BlobStore(home)
    stored = store.put_file(source)
    os.utime(blob_path(home, stored.digest), (0, 0))
    assert not store.put_file(source).new
    assert blob_path(home, stored.digest).stat().st_mtime > 0


def test_no_blob_is_deleted_while_a_runs_events_are_damaged(home: Path, tmp_path: Path) -> None:
    """A damaged frame may have held an artifact's record: gc then deletes no blob."""
    import os

    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    run = polytrack.init(project="p", name="r", dir=home, capture=False)
    run.log_artifact(source, name="model")
    run.finish()
    orphan = blob_path(home, _digest(b"orphan"))
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"orphan")
    for blob in (home / "blobs" / "sha256").glob("*/*"):
        os.utime(blob, (0, 0))
    log = home / "runs" / run.id / "events-000.log"
    data = bytearray(log.read_bytes())
    data[80] ^= 0xFF  # inside the first frame's payload
    log.write_bytes(bytes(data))
    report = polytrack.gc(home=home)
    assert report.blobs == () and orphan.exists() and report.kept_blobs == 2
