"""Artifacts and models: the blob store, the background copier, and reading them back."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import polytrack
from polytrack.artifacts import (
    ArtifactCopier,
    ArtifactRequest,
    ArtifactView,
    read_artifacts,
)
from polytrack.capture.data import hash_source
from polytrack.errors import (
    ArtifactNotFoundError,
    InvalidInputError,
    RunStateError,
    StoreError,
    TrackingWarning,
)
from polytrack.models import ArtifactFile, ArtifactLogged, Event
from polytrack.run import Run
from polytrack.store.blobs import BlobStore, blob_path

WAIT = 10.0  # seconds: a bound for waits that end at once when the code is right


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blobs(home: Path) -> list[Path]:
    root = home / "blobs" / "sha256"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def start(home: Path) -> Run:
    run = polytrack.init(dir=home, capture=False)
    assert isinstance(run, Run)
    return run


class GatedBlobStore(BlobStore):
    """A real blob store whose copies wait until the test opens the gate."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.gate = threading.Event()
        self.entered = threading.Event()  # a copy is waiting at the gate

    def put_file(self, source: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
        self.entered.set()
        if not self.gate.wait(WAIT):
            raise AssertionError("the gate was never opened")
        return super().put_file(source)


@pytest.fixture
def gated(home: Path) -> Iterator[GatedBlobStore]:
    store = GatedBlobStore(home)
    yield store
    store.gate.set()  # never leave a copier waiting


# -- the blob store ------------------------------------------------------------------------


def test_same_bytes_twice_are_stored_once(home: Path, tmp_path: Path) -> None:
    """Equal contents, logged as files, inside directories and by two runs, make one blob."""
    data = make_tree(tmp_path / "data", {"a.bin": b"same", "sub/b.bin": b"same", "c": b"other"})
    (tmp_path / "copy.bin").write_bytes(b"same")
    for _ in range(2):
        run = start(home)
        run.log_artifact(data)
        run.log_artifact(tmp_path / "copy.bin")
        run.log_model(tmp_path / "copy.bin", "model")
        run.finish()
    assert [p.read_bytes() for p in blobs(home)] in ([b"other", b"same"], [b"same", b"other"])
    assert blob_path(home, sha(b"same")).read_bytes() == b"same"
    assert not list((home / "blobs" / "tmp").iterdir())  # no temporary file left behind


def test_blobs_are_read_only_and_named_by_their_sha256(home: Path, tmp_path: Path) -> None:
    """A blob lives at blobs/sha256/<2 hex>/<62 hex>, mode 0444, and verifies."""
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(3 * (1 << 20) + 5))  # several copy chunks, and a tail
    store = BlobStore(home)
    stored = store.put_file(source)
    store.flush()
    digest = sha(source.read_bytes())
    assert (stored.digest, stored.size, stored.new) == (digest, source.stat().st_size, True)
    path = home / "blobs" / "sha256" / digest[7:9] / digest[9:]
    assert path.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert store.verify(digest)
    assert store.put_file(source).new is False


def test_verify_and_export_catch_a_corrupt_blob(home: Path, tmp_path: Path) -> None:
    """A blob whose bytes changed fails verify(), and export() refuses to write it."""
    source = tmp_path / "f.txt"
    source.write_bytes(b"original")
    store = BlobStore(home)
    digest = store.put_file(source).digest
    path = blob_path(home, digest)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    assert not store.verify(digest)
    target = tmp_path / "out.txt"
    with pytest.raises(StoreError, match="corrupt"):
        store.export(digest, target)
    assert not target.exists() and not list(tmp_path.glob(".out.txt.*"))


def test_a_missing_source_is_file_not_found(home: Path, tmp_path: Path) -> None:
    """put_file tells a vanished source (FileNotFoundError) from a store failure."""
    with pytest.raises(FileNotFoundError):
        BlobStore(home).put_file(tmp_path / "gone")
    with pytest.raises(ValueError, match="not a sha256 digest"):
        BlobStore(home).path("sha256:../../etc/passwd")


# -- logging -------------------------------------------------------------------------------


def test_directory_round_trip_with_nested_files(home: Path, tmp_path: Path) -> None:
    """A directory comes back byte for byte; its digest is the one its DataRef would have."""
    files = {
        "model.pt": os.urandom(70_000),
        "config/params.json": b'{"lr": 0.1}',
        "config/deep/er/x.txt": b"x",
        "empty": b"",
        "n\u00e4me with space.txt": b"unicode",
    }
    source = make_tree(tmp_path / "ckpt", files)
    (source / "link.txt").symlink_to(source / "config" / "params.json")
    run = start(home)
    run.log_artifact(source, name="checkpoints/best", kind="checkpoint")
    view = run.artifact("checkpoints/best")
    run.finish()

    assert view.digest == hash_source(source).digest
    assert view.kind == "checkpoint" and view.role == "output" and view.is_directory
    assert [f.path for f in view.files] == sorted([*files, "link.txt"])
    assert view.size == sum(len(d) for d in files.values()) + len(files["config/params.json"])
    written = polytrack.get_run(run.id, home=home).artifact("checkpoints/best").download(
        tmp_path / "restored"
    )
    assert written == tmp_path / "restored" / "checkpoints" / "best"
    assert tree(written) == {**files, "link.txt": files["config/params.json"]}


def test_a_file_and_a_model_come_back_under_their_file_name(home: Path, tmp_path: Path) -> None:
    """A file's digest is its sha256; secret metadata is redacted; it downloads by name."""
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"\x00weights" * 1000)
    run = start(home)
    metadata = {"acc": 0.93, "shape": (1, 28, 28), "hub_token": "hf_abc"}
    run.log_model(weights, framework="pytorch", metadata=metadata)
    run.finish()

    (view,) = polytrack.get_run(run.id, home=home).artifacts()
    assert (view.name, view.kind, view.framework) == ("weights.pt", "model", "pytorch")
    assert view.metadata == {"acc": 0.93, "shape": [1, 28, 28], "hub_token": "[REDACTED]"}
    assert view.digest == sha(weights.read_bytes()) and not view.is_directory
    assert view.files == (ArtifactFile("weights.pt", view.digest, weights.stat().st_size),)
    written = view.download(tmp_path / "out")
    assert written == tmp_path / "out" / "weights.pt"
    assert written.read_bytes() == weights.read_bytes()
    assert stat.S_IMODE(written.stat().st_mode) & 0o200  # the copy is the user's to edit


@pytest.mark.parametrize(
    "name",
    ["../escape", "a/../../b", "/etc/passwd", "a//b", "./a", "", "  ", "C:\\temp\\x", "..\\x"],
)
def test_names_that_would_escape_are_refused(home: Path, tmp_path: Path, name: str) -> None:
    """A name that is empty, absolute or has '.'/'..' parts raises, naming the field."""
    source = tmp_path / "f.txt"
    source.write_text("x")
    run = start(home)
    with pytest.raises(InvalidInputError, match=r"^name"):
        run.log_artifact(source, name=name)
    with pytest.raises(InvalidInputError, match=r"^name"):
        run.log_model(source, name=name)
    run.finish()
    assert read_artifacts(run.dir) == [] and blobs(home) == []


def test_bad_paths_and_options_are_refused_on_the_callers_thread(
    home: Path, tmp_path: Path
) -> None:
    """A missing path, bad role, kind or metadata raise at once, naming the field."""
    source = tmp_path / "f.txt"
    source.write_text("x")
    run = start(home)
    with pytest.raises(InvalidInputError, match=r"^path .* does not exist"):
        run.log_artifact(tmp_path / "missing.bin")
    with pytest.raises(InvalidInputError, match=r"^role"):
        run.log_artifact(source, role="both")
    with pytest.raises(InvalidInputError, match=r"^kind"):
        run.log_artifact(source, kind="")
    with pytest.raises(InvalidInputError, match=r"^metadata.model.layers"):
        run.log_model(source, metadata={"model": {"layers": object()}})
    with pytest.raises(InvalidInputError, match=r"^path must be"):
        run.log_artifact(123)  # type: ignore[arg-type]
    run.finish()
    assert read_artifacts(run.dir) == []


def test_download_refuses_to_write_outside_its_directory(home: Path, tmp_path: Path) -> None:
    """A recorded path with '..' parts, or a symlink inside DIR, cannot lead a write out."""
    store = BlobStore(home)
    digest = store.put_file(make_tree(tmp_path / "src", {"f": b"data"}) / "f").digest
    escaping = ArtifactLogged(
        name="evil",
        kind="directory",
        role="output",
        digest=sha(b"manifest"),
        size=4,
        files=(ArtifactFile("../../outside.txt", digest, 4),),
    )
    target = tmp_path / "target"
    with pytest.raises(StoreError, match="refusing to write"):
        ArtifactView.of(escaping, home).download(target)
    assert not (tmp_path / "outside.txt").exists()

    (target / "linked").parent.mkdir(parents=True, exist_ok=True)
    (target / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    through_link = ArtifactLogged(
        name="linked",
        kind="directory",
        role="output",
        digest=sha(b"manifest"),
        size=4,
        files=(ArtifactFile("f", digest, 4),),
    )
    with pytest.raises(StoreError, match="through a symlink"):
        ArtifactView.of(through_link, home).download(target)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_unknown_artifact_names_raise(home: Path, tmp_path: Path) -> None:
    """Asking a live or a recorded run for an artifact it lacks says which."""
    run = start(home)
    with pytest.raises(ArtifactNotFoundError, match=r"has no artifact 'model'"):
        run.artifact("model")
    run.finish()
    with pytest.raises(ArtifactNotFoundError, match="has no artifact 'model'"):
        polytrack.get_run(run.id, home=home).artifact("model")


def test_the_latest_artifact_of_a_name_wins(home: Path, tmp_path: Path) -> None:
    """Logging a name twice keeps both records; artifact(name) is the later one."""
    source = tmp_path / "m.bin"
    run = start(home)
    source.write_bytes(b"epoch 1")
    run.log_model(source, "model")
    run.artifact("model")  # the copy is done before the file changes again
    source.write_bytes(b"epoch 2")
    run.log_model(source, "model")
    run.finish()
    view = polytrack.get_run(run.id, home=home)
    assert [a.digest for a in view.artifacts()] == [sha(b"epoch 1"), sha(b"epoch 2")]
    assert view.artifact("model").digest == sha(b"epoch 2")


# -- in the background ----------------------------------------------------------------------


def test_log_artifact_returns_before_the_copy(
    home: Path, tmp_path: Path, gated: GatedBlobStore
) -> None:
    """log_artifact returns while its copy waits; artifact(name) waits for the copy."""
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(1 << 20))
    run = start(home)
    run.use_blob_store(gated)
    run.log_artifact(source, name="big")  # would never return if it copied here
    assert gated.entered.wait(WAIT)  # the artifacts thread is at the copy
    assert read_artifacts(run.dir) == [] and blobs(home) == []
    with pytest.raises(RunStateError):
        run.use_blob_store(BlobStore(home))
    gated.gate.set()
    assert run.artifact("big").digest == sha(source.read_bytes())
    run.finish()


def test_finish_waits_for_every_pending_copy(
    home: Path, tmp_path: Path, gated: GatedBlobStore
) -> None:
    """finish() returns only once every queued copy is recorded, before the final status."""
    sources = [tmp_path / f"f{i}.bin" for i in range(5)]
    for i, source in enumerate(sources):
        source.write_bytes(b"%d" % i * 1000)
    run = start(home)
    run.use_blob_store(gated)
    for source in sources:
        run.log_artifact(source)
    finisher = threading.Thread(target=run.finish, name="test-finisher")
    finisher.start()
    finisher.join(0.3)
    assert finisher.is_alive()  # held by the copies the gate keeps waiting
    gated.gate.set()
    finisher.join(WAIT)
    assert not finisher.is_alive()
    view = polytrack.get_run(run.id, home=home)
    assert view.status == "succeeded"
    assert [a.name for a in view.artifacts()] == [s.name for s in sources]
    assert len(blobs(home)) == 5


def test_a_file_deleted_before_its_copy_warns_and_the_run_goes_on(
    home: Path, tmp_path: Path, gated: GatedBlobStore
) -> None:
    """A vanished file warns once (TrackingWarning); later artifacts are still recorded."""
    doomed, kept = tmp_path / "doomed.bin", tmp_path / "kept.bin"
    doomed.write_bytes(b"soon gone")
    kept.write_bytes(b"stays")
    run = start(home)
    run.use_blob_store(gated)
    run.log_artifact(doomed)
    assert gated.entered.wait(WAIT)
    doomed.unlink()
    run.log_artifact(kept)
    with pytest.warns(TrackingWarning, match="could not store artifact 'doomed.bin'"):
        gated.gate.set()
        with pytest.raises(StoreError, match="could not be stored"):
            run.artifact("doomed.bin")
        run.finish()
    view = polytrack.get_run(run.id, home=home)
    assert view.status == "succeeded"
    assert [a.name for a in view.artifacts()] == ["kept.bin"]


def test_a_store_that_cannot_be_written_warns_once(home: Path, tmp_path: Path) -> None:
    """Every copy failing (the store unwritable) gives one warning and no records."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "blobs").write_text("not a directory")
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    run = start(home)
    with pytest.warns(TrackingWarning, match="could not store artifact") as caught:
        run.log_artifact(source, name="one")
        run.log_artifact(source, name="two")
        run.finish()
    assert len([w for w in caught if "could not store" in str(w.message)]) == 1
    assert read_artifacts(run.dir) == []


def test_a_file_removed_from_a_directory_during_the_copy_is_left_out(
    home: Path, tmp_path: Path, gated: GatedBlobStore
) -> None:
    """A directory's file that vanishes before its copy is not part of the artifact."""
    source = make_tree(tmp_path / "d", {"a": b"a", "b": b"b"})
    run = start(home)
    run.use_blob_store(gated)
    run.log_artifact(source)
    assert gated.entered.wait(WAIT)  # walked; waiting to copy "a"
    (source / "b").unlink()
    gated.gate.set()
    view = run.artifact("d")
    run.finish()
    assert [f.path for f in view.files] == ["a"]
    assert view.digest == hash_source(source).digest


def test_the_queue_is_bounded(home: Path, tmp_path: Path) -> None:
    """With max_queued requests waiting, submit() waits for room instead of growing."""
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    store = GatedBlobStore(home)
    recorded: list[Event] = []
    copier = ArtifactCopier(
        store=store, record=recorded.append, warn=lambda *_: None, run_id="t", max_queued=1
    )
    copier.start()
    try:
        request = ArtifactRequest("a", str(source), None, "output")
        copier.submit(request)  # taken by the thread, which waits at the gate
        assert store.entered.wait(WAIT)
        copier.submit(ArtifactRequest("b", str(source), None, "output"))  # fills the queue
        third = threading.Thread(
            target=copier.submit,
            args=(ArtifactRequest("c", str(source), None, "output"),),
            name="test-submit",
        )
        third.start()
        third.join(0.3)
        assert third.is_alive()
        store.gate.set()
        third.join(WAIT)
    finally:
        store.gate.set()
        copier.stop()
    assert [e.name for e in recorded if isinstance(e, ArtifactLogged)] == ["a", "b", "c"]
    assert copier.submit(request) is False  # stopped: nothing more is queued


def test_the_artifact_is_complete_after_finish_and_a_kill(home: Path, tmp_path: Path) -> None:
    """A process killed (SIGKILL) right after finish() leaves every artifact whole."""
    data = make_tree(tmp_path / "data", {f"part-{i:03d}.bin": os.urandom(2000) for i in range(50)})
    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(200_000))
    script = (
        "import os, signal, polytrack\n"
        f"run = polytrack.init(dir={str(home)!r}, capture=False)\n"
        f"run.log_artifact({str(data)!r})\n"
        f"run.log_model({str(model)!r}, 'model')\n"
        "print(run.id, flush=True)\n"
        "run.finish()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -9, done.stderr
    view = polytrack.get_run(done.stdout.strip(), home=home)
    assert view.status == "succeeded"
    assert tree(view.artifact("data").download(tmp_path / "out")) == tree(data)
    assert view.artifact("model").download(tmp_path / "out").read_bytes() == model.read_bytes()
    store = BlobStore(home)
    assert all(store.verify(f.digest) for a in view.artifacts() for f in a.files)


class CountingBlobStore(BlobStore):
    """A real blob store that counts the files it was asked to read."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.reads: list[str] = []

    def put_file(self, source: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
        self.reads.append(os.fspath(source))
        return super().put_file(source)


def test_an_unchanged_file_logged_again_is_not_read_again(home: Path, tmp_path: Path) -> None:
    """A file the copier stored, unchanged since (by stat), costs no read the next time."""
    checkpoint = tmp_path / "ckpt.bin"
    checkpoint.write_bytes(b"epoch 1")
    store = CountingBlobStore(home)
    recorded: list[Event] = []
    # racy_seconds=0: trust timestamps at once (a file must not change within their tick).
    copier = ArtifactCopier(
        store=store, record=recorded.append, warn=lambda *_: None, run_id="t", racy_seconds=0
    )
    copier.start()
    request = ArtifactRequest("model", str(checkpoint), "model", "output")
    try:
        copier.submit(request)
        copier.submit(request)
        copier.wait("model")
        assert store.reads == [str(checkpoint)]
        checkpoint.write_bytes(b"epoch 2")
        copier.submit(request)
    finally:
        copier.stop()
    assert store.reads == [str(checkpoint)] * 2
    assert [e.digest for e in recorded if isinstance(e, ArtifactLogged)] == [
        sha(b"epoch 1"),
        sha(b"epoch 1"),
        sha(b"epoch 2"),
    ]


def test_a_file_changed_just_before_its_copy_is_read_again(home: Path, tmp_path: Path) -> None:
    """A file too recent to trust by its timestamps is read each time it is logged."""
    fresh = tmp_path / "fresh.bin"
    fresh.write_bytes(b"just written")
    store = CountingBlobStore(home)
    run = start(home)
    run.use_blob_store(store)
    for _ in range(2):
        run.log_artifact(fresh)
        run.artifact("fresh.bin")
    run.finish()
    assert store.reads == [str(fresh)] * 2
    assert len(blobs(home)) == 1


# -- inputs, outputs, module functions, disabled runs -----------------------------------


def test_inputs_are_params_and_outputs_are_read_back(home: Path) -> None:
    """log_inputs records params; log_outputs merges, reset drops, secrets are redacted."""
    run = start(home)
    run.log_inputs(lr=0.1, layers=[64, 32])
    run.log_outputs(accuracy=0.9, loss=0.3, api_token="s3cret")
    run.log_outputs(accuracy=0.93, best={"epoch": 7, "path": Path("m.pt")})
    run.finish()
    view = polytrack.get_run(run.id, home=home)
    assert view.params == {"lr": 0.1, "layers": [64, 32]}
    assert view.outputs == {
        "accuracy": 0.93,
        "loss": 0.3,
        "api_token": "[REDACTED]",
        "best": {"epoch": 7, "path": "m.pt"},
    }
    run = start(home)
    run.log_outputs(a=1)
    run.log_outputs(reset=True, b=2)
    run.finish()
    assert polytrack.get_run(run.id, home=home).outputs == {"b": 2}
    with pytest.raises(InvalidInputError, match=r"^outputs.bad"):
        start(home).log_outputs(bad=object())


def test_module_functions_log_on_the_current_run(home: Path, tmp_path: Path) -> None:
    """polytrack.log_artifact/log_model/log_inputs/log_outputs act on the current run."""
    source = tmp_path / "m.bin"
    source.write_bytes(b"m")
    with pytest.warns(TrackingWarning, match="before polytrack.init"):
        polytrack.log_artifact(source)
    run = start(home)
    polytrack.log_artifact(source, name="artifact", kind="weights", role="input")
    polytrack.log_model(source, "model", framework="sklearn")
    polytrack.log_inputs(lr=0.5)
    polytrack.log_outputs(score=1.0)
    polytrack.finish()
    view = polytrack.get_run(run.id, home=home)
    assert [(a.name, a.kind, a.role) for a in view.artifacts()] == [
        ("artifact", "weights", "input"),
        ("model", "model", "output"),
    ]
    assert view.params == {"lr": 0.5} and view.outputs == {"score": 1.0}


def test_a_disabled_run_records_no_artifacts(home: Path, tmp_path: Path) -> None:
    """In disabled mode the calls do nothing, and there is no artifact to ask for."""
    source = tmp_path / "m.bin"
    source.write_bytes(b"m")
    run = polytrack.init(dir=home, mode="disabled")
    run.log_artifact(source)
    run.log_model(source, "model")
    run.log_inputs(a=1)
    run.log_outputs(b=2)
    with pytest.raises(RunStateError):
        run.artifact("model")
    run.finish()
    assert not home.exists()


def test_logging_after_finish_warns_and_copies_nothing(home: Path, tmp_path: Path) -> None:
    """log_artifact after finish() warns once and starts no copy."""
    source = tmp_path / "m.bin"
    source.write_bytes(b"m")
    run = start(home)
    run.finish()
    with pytest.warns(TrackingWarning, match="after it finished"):
        run.log_artifact(source)
    assert blobs(home) == []
