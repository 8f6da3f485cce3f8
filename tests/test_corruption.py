"""A damaged byte in a run's files costs little, and the readers say what it cost (issue 12).

The trials damage one byte (flipped or zeroed, at a seeded random offset) of one file of a
finished run, then read the run with every reader: `read_run_files`, `summarize_run_files`
(the index's), `JournalTail` (the sync engine's) and the public API. Each trial checks that
(a) reading never raises, (b) nothing wrong comes back and the loss stays within its bound
(one 4 KiB block of points per damaged segment byte; one event per damaged log byte, and no
points), and (c) every loss is reported, naming the damaged file.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np
import pytest

import polytrack
from polytrack.errors import DamagedRecordsWarning
from polytrack.models import (
    Checksum,
    Event,
    KeyDefined,
    ParamsSet,
    RunStarted,
    StatusChanged,
    TagsAdded,
)
from polytrack.store.journal import (
    BLOCK,
    FRAME,
    HEADER_SIZE,
    KIND_POINT,
    POINT_RECORD,
    POINT_SIZE,
    SEGMENT_HEADER,
    SEGMENT_MAGIC,
    Events,
    checksum_of,
    event_to_dict,
    frames,
    stable_frames,
)
from polytrack.store.reader import read_run_files, summarize_run_files
from polytrack.store.tail import JournalTail, Position

TRIALS = 80  # per kind of file, as in the report


@attrs.frozen
class ReadBack:
    """What the readers make of a run directory."""

    events: list[Event]
    points: dict[str, dict[int, tuple[float, float]]]  # key -> step -> (value, time)
    shipped_events: list[Event]
    shipped: dict[str, dict[int, tuple[float, float]]]
    corrupt: list[str]  # every reader's messages


@attrs.frozen
class Pristine:
    root: Path
    run_id: str
    truth: ReadBack

    @property
    def run_dir(self) -> Path:
        return self.root / "home" / "runs" / self.run_id


def _by_step(steps: object, values: object, times: object) -> dict[int, tuple[float, float]]:
    pairs = zip(
        np.asarray(steps).tolist(),
        np.asarray(values).tolist(),
        np.asarray(times).tolist(),
        strict=True,
    )
    found = {step: (value, time) for step, value, time in pairs}
    assert len(found) == np.asarray(steps).size, "a step came back twice"
    return found


def read_back(directory: Path) -> ReadBack:
    """Read `directory` with every reader of run files; they must agree on the counts."""
    files = read_run_files(directory, with_times=True)
    summary = summarize_run_files(directory)
    counts = {key: series.steps.size for key, series in files.series.items()}
    assert {key: s.summary.count for key, s in summary.metrics.items()} == counts
    tail = JournalTail(directory)
    piece = tail.read(Position(), live=False, max_points=10**9, max_events=10**9)
    shipped: dict[str, dict[int, tuple[float, float]]] = {}
    for chunk in piece.chunks:
        shipped.setdefault(chunk.key, {}).update(_by_step(chunk.steps, chunk.values, chunk.times))
    return ReadBack(
        events=[event for _, event in files.events],
        points={
            key: _by_step(series.steps, series.values, series.times)
            for key, series in files.series.items()
        },
        shipped_events=piece.events,
        shipped=shipped,
        corrupt=files.corrupt + summary.corrupt + tail.corrupt,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pristine]:
    """One finished run with every kind of file: point and row segments (the pure-Python
    hot path writes rows), an events log, a data ref's manifest, an artifact's blob and
    captured output."""
    root = tmp_path_factory.mktemp("pristine")
    with pytest.MonkeyPatch.context() as env:  # what conftest does per test, for the module
        env.setenv("POLYTRACK_HOME", str(root / "default-home"))
        env.setenv("POLYTRACK_CONFIG", str(root / "no-config.toml"))
        env.setenv("POLYTRACK_CACHE_DIR", str(root / "cache"))
        for name in ("POLYTRACK_PROJECT", "POLYTRACK_MODE", "POLYTRACK_BACKEND"):
            env.delenv(name, raising=False)
        env.delenv("POLYTRACK_ARTIFACT_STORE", raising=False)
        env.chdir(root)
        data = root / "data"
        data.mkdir()
        (data / "a.txt").write_text("a")
        (data / "b.txt").write_text("b")
        (root / "model.bin").write_bytes(random.Random(0).randbytes(3000))
        settings = polytrack.Settings.from_env().evolve(
            home=root / "home", speedups=False, capture_system=False, index_on_finish=False
        )
        run = polytrack.init(settings=settings, project="p", params={"lr": 0.1})
        for step in range(12_000):  # three segments of single points
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        for step in range(4_000):  # two segments of rows
            run.log_metrics({"a": float(step), "b": -float(step), "c": 0.5}, step=step)
        run.log_data_ref("train", data)
        run.log_artifact(root / "model.bin", "model")
        run.log_params({"late": 1})
        run.log_outputs(accuracy=0.9)
        print("a line of output")
        run.finish()
    pristine = Pristine(root, run.id, read_back(run.dir))
    assert pristine.truth.corrupt == []
    assert len(list(run.dir.glob("points-000-000-*.seg"))) >= 3
    assert len(list(run.dir.glob("points-000-001-*.seg"))) >= 2
    yield pristine


@pytest.fixture
def run_dir(pristine: Pristine, tmp_path: Path) -> Path:
    """A copy of the pristine run, to damage."""
    copy = tmp_path / "home" / "runs" / pristine.run_id
    shutil.copytree(pristine.run_dir, copy)
    return copy


def damage(path: Path, rng: random.Random) -> tuple[int, str]:
    """Flip or zero one byte of `path` at a random offset: which, and what was done."""
    data = bytearray(path.read_bytes())
    at = rng.randrange(len(data))
    if data[at] and rng.random() < 0.5:
        data[at], how = 0, "zeroed"
    else:
        data[at] ^= rng.randrange(1, 256)
        how = "flipped"
    path.write_bytes(bytes(data))
    return at, f"{path.name} byte {at} {how}"


def event_at(log: Path, at: int) -> Event | None:
    """The event whose frame holds byte `at` of an undamaged log."""
    from polytrack._convert import event_from_dict

    for pos, after, payload in frames(log.read_bytes()):
        if pos <= at < after and payload is not None:
            return event_from_dict(json.loads(payload))
    return None


@attrs.frozen
class Loss:
    points: int
    events: int
    times_off: bool


def compare(truth: ReadBack, got: ReadBack) -> Loss:
    """What `got` lost of `truth`; fails if it returned anything `truth` does not hold."""
    lost, times_off = 0, False
    for readers, (true_points, got_points) in {
        "files": (truth.points, got.points),
        "tail": (truth.shipped, got.shipped),
    }.items():
        assert set(got_points) <= set(true_points), readers
        missing = 0
        for key, points in true_points.items():
            found = got_points.get(key, {})
            for step, (value, time) in found.items():
                assert step in points, f"{readers}: {key} step {step} is not in the run"
                assert struct.pack("<d", value) == struct.pack("<d", points[step][0]), (
                    f"{readers}: {key} step {step} came back as {value}, not {points[step][0]}"
                )
                times_off = times_off or time != points[step][1]
            missing += len(points) - len(found)
        lost = max(lost, missing)
    lost_events = 0
    for true_events, got_events in (
        (truth.events, got.events),
        (truth.shipped_events, got.shipped_events),
    ):
        remaining = iter(true_events)
        assert all(any(e == t for t in remaining) for e in got_events), "events out of order"
        lost_events = max(lost_events, len(true_events) - len(got_events))
    return Loss(lost, lost_events, times_off)


def _trials(
    pristine: Pristine, run_dir: Path, pattern: str, seed: int
) -> Iterator[tuple[str, Path, ReadBack, Loss]]:
    """Damage one byte of one file matching `pattern`, read the run, restore the file."""
    rng = random.Random(seed)
    files = sorted(run_dir.glob(pattern))
    for _ in range(TRIALS):
        path = rng.choice(files)
        original = path.read_bytes()
        _, what = damage(path, rng)
        try:
            got = read_back(run_dir)
            yield what, path, got, compare(pristine.truth, got)
        finally:
            path.write_bytes(original)


def _reported(got: ReadBack, path: Path) -> bool:
    return any(path.name in message for message in got.corrupt)


@pytest.mark.parametrize("stream, width", [(0, 1), (1, 3)], ids=["points", "rows"])
def test_a_damaged_segment_byte_costs_one_block_and_is_reported(
    pristine: Pristine, run_dir: Path, stream: int, width: int
) -> None:
    """A damaged byte of a sealed segment drops at most the records of its 4 KiB block,
    returns nothing wrong, and is reported naming the segment."""
    record_size = 16 + 8 * width
    bound = (-(-BLOCK // record_size) + 1) * width  # the records that overlap one block
    worst, lossy = 0, 0
    for what, path, got, loss in _trials(
        pristine, run_dir, f"points-000-{stream:03d}-*.seg", seed=stream
    ):
        assert loss.points <= bound, what
        assert loss.events == 0, what
        if loss.points or loss.times_off:
            lossy += 1
            assert _reported(got, path), f"{what}: lost {loss.points} points, said nothing"
        if loss.times_off:
            assert any("times may be off" in m for m in got.corrupt), what
        worst = max(worst, loss.points)
    assert lossy, "no trial hit a record: the trials test nothing"
    print(
        f"stream {stream}: {TRIALS} trials, {lossy} lossy, points lost per damaged byte <= {worst}"
    )


def test_a_damaged_event_frame_costs_that_frame_and_is_reported(
    pristine: Pristine, run_dir: Path
) -> None:
    """A damaged byte of the events log costs at most its frame: the frames after it are
    read (the final status too), no point is lost (the key table is written twice), and
    the loss is reported naming the log."""
    lossy = 0
    for what, path, got, loss in _trials(pristine, run_dir, "events-*.log", seed=2):
        assert loss.events <= 1 and loss.points == 0, f"{what}: {loss}"
        assert any(isinstance(e, StatusChanged) for e in got.events) or loss.events, what
        if loss.events:
            lossy += 1
            assert _reported(got, path), f"{what}: lost an event, said nothing"
    assert lossy
    print(f"events: {TRIALS} trials, {lossy} lost one frame, none lost more")


def test_damaged_files_never_break_the_public_readers(pristine: Pristine, tmp_path: Path) -> None:
    """Whatever file of a run is damaged (segments, events, manifest, captured output,
    the artifact's blob), `runs()`, `get_run()` and a run's readers answer, with the run
    (also when its first record was hit), its final status and params unless that very
    record was hit, and what was skipped in `damaged`, said once by a warning; a damaged
    blob fails its own download with a StoreError that says it is corrupt."""
    rng = random.Random(3)
    patterns = ["points-*.seg", "events-*.log", "manifest-*.json", "output-*.log", "blob"]
    for trial in range(30):
        home = tmp_path / f"home-{trial}"
        shutil.copytree(pristine.root / "home", home)
        directory = home / "runs" / pristine.run_id
        pattern = patterns[trial % len(patterns)]
        if pattern == "blob":
            candidates = [p for p in (home / "blobs" / "sha256").rglob("*") if p.is_file()]
        else:
            candidates = sorted(directory.glob(pattern))
        path = rng.choice(candidates)
        path.chmod(0o644)  # blobs are read-only
        at, what = damage(path, rng)
        hit = event_at(pristine.run_dir / path.name, at) if pattern.startswith("events") else None
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            (view,) = polytrack.runs(home=home)  # listed, whatever record was hit
            view.history("loss")
            view.history("a", with_time=True)
            view.snapshot()
            view.logs()
            outputs = view.outputs
            again = polytrack.get_run(pristine.run_id, home=home)
            polytrack.runs(home=home)
        assert again.id == view.id == pristine.run_id and again.damaged == view.damaged, what
        assert view.status == "succeeded" or isinstance(hit, StatusChanged), what
        assert view.params == {"lr": 0.1, "late": 1} or isinstance(hit, ParamsSet), what
        if isinstance(hit, RunStarted):
            assert view.project == "unknown" and view.name == view.id, what
            assert any("starts the run" in message for message in view.damaged), what
        else:
            assert view.project == "p", what
        lost = 12_000 - view.metrics["loss"].count
        assert lost == 0 or (pattern.startswith("points") and lost <= 172), what
        assert not lost or any(path.name in message for message in view.damaged), what
        assert outputs in ({"accuracy": 0.9}, {}), what
        # Every reader's losses are in `damaged`, said in one warning, and never again.
        told = [w.message for w in said if isinstance(w.message, DamagedRecordsWarning)]
        assert [warning.messages for warning in told] == ([view.damaged] if view.damaged else [])
        assert all(w.category is DamagedRecordsWarning for w in said), what
        for artifact in view.artifacts():
            target = tmp_path / f"restored-{trial}"
            try:
                artifact.download(target)
            except polytrack.errors.StoreError as exc:
                assert pattern == "blob" and "corrupt" in str(exc), what


# -- records that are whole but do not decode -------------------------------------------------


def _frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload + bytes(-len(payload) % 8)


def _log(path: Path, *payloads: bytes) -> None:
    path.write_bytes(
        b"PTEVT\x00\x00\x01".ljust(HEADER_SIZE, b"\x00") + b"".join(map(_frame, payloads))
    )


def _event(event: Event) -> bytes:
    return json.dumps(event_to_dict(event)).encode()


@pytest.mark.parametrize(
    "bad",
    [
        b'{"params": {"lr": 0.1}, "ty',  # cut short: not JSON
        b"[1, 2, 3]",  # JSON, but not a record
        b'{"type": ["key"]}',  # a tag that is not a string
        b'{"type": "key", "id": 0, "name": "x"}',  # a record the models refuse
        b'{"type": "nothing-we-know"}',
        b'{"a": ' * 100_000 + b"1" + b"}" * 100_000,  # nested deeper than json can go
        b"\xff\xfe not utf-8",
    ],
    ids=["truncated", "list", "tag", "refused", "unknown", "deep", "bytes"],
)
def test_a_record_that_does_not_decode_is_skipped_and_named(tmp_path: Path, bad: bytes) -> None:
    """A whole frame whose payload is not a record we can read is skipped and reported;
    the records after it are read, by every reader."""
    _log(
        tmp_path / "events-000.log",
        _event(ParamsSet(params={"lr": 0.1})),
        bad,
        _event(TagsAdded(tags=("after",))),
    )
    got = read_back(tmp_path)
    assert got.events == [ParamsSet(params={"lr": 0.1}), TagsAdded(tags=("after",))]
    assert got.shipped_events == got.events
    assert any(m.startswith("events-000.log@") for m in got.corrupt)
    events, kept = Events.open_existing(tmp_path / "events-000.log")
    events.close()
    assert kept == got.events


@pytest.mark.parametrize("hit", [1, 2], ids=["middle", "last"])
def test_a_zeroed_frame_header_costs_that_frame_only(tmp_path: Path, hit: int) -> None:
    """Eight zero bytes over a frame header cost that frame: in the middle of a log, the
    frames after it are read; over the last frame of a closed log, the loss is reported."""
    events = [
        ParamsSet(params={"lr": 0.1}),
        TagsAdded(tags=("x",)),
        StatusChanged("succeeded", 1.0),
    ]
    log = tmp_path / "events-000.log"
    _log(log, *map(_event, events))
    data = bytearray(log.read_bytes())
    at = list(frames(bytes(data)))[hit][0]
    data[at : at + FRAME.size] = bytes(FRAME.size)
    log.write_bytes(bytes(data))
    got = read_back(tmp_path)
    assert got.events == [event for n, event in enumerate(events) if n != hit]
    assert any(str(at) in m for m in got.corrupt)


def test_a_crash_torn_tail_is_the_end_and_not_damage(tmp_path: Path) -> None:
    """A frame whose header a crash never wrote (zeros over its payload, zeros after) is
    the end of the log, as a live log being written is: nothing is reported."""
    log = tmp_path / "events-000.log"
    _log(log, _event(ParamsSet(params={"lr": 0.1})))
    payload = _event(TagsAdded(tags=("torn",)))
    with log.open("ab") as file:
        file.write(bytes(FRAME.size) + payload + bytes(4096))
    got = read_back(tmp_path)
    assert got.events == [ParamsSet(params={"lr": 0.1})] and got.corrupt == []


def test_a_frame_not_yet_written_is_not_skipped_by_a_live_reader(tmp_path: Path) -> None:
    """A reader that sees a frame's header still zero while a later frame is whole (the
    writer filled both as it read) reads again and gets both, reporting nothing."""
    log = tmp_path / "events-000.log"
    first, second = _event(TagsAdded(tags=("one",))), _event(TagsAdded(tags=("two",)))
    _log(log, first, second)
    whole = log.read_bytes()
    racing = bytearray(whole)
    racing[HEADER_SIZE : HEADER_SIZE + FRAME.size] = bytes(FRAME.size)  # not there yet
    reads = iter([bytes(racing), whole, whole])
    _, found = stable_frames(lambda: next(reads))
    assert [payload for _, _, payload in found] == [first, second]


def _segment(path: Path, stream: int, records: bytes, record_size: int) -> bytes:
    header = bytearray(HEADER_SIZE)
    SEGMENT_HEADER.pack_into(header, 0, SEGMENT_MAGIC, stream, record_size, 100, 0, 10**18)
    path.write_bytes(bytes(header) + records)
    return bytes(header)


def _points(*pairs: tuple[int, int]) -> bytes:
    return b"".join(
        POINT_RECORD.pack(step, float(step), 0.0, kid, KIND_POINT) for step, kid in pairs
    )


def test_points_of_a_key_no_event_names_are_skipped_and_named(tmp_path: Path) -> None:
    """A point whose key id no event defines is skipped and reported, by every reader."""
    _log(tmp_path / "events-000.log", _event(KeyDefined(id=1, name="loss")))
    _segment(tmp_path / "points-000-000-00000.seg", 0, _points((0, 1), (1, 7), (2, 1)), 24)
    got = read_back(tmp_path)
    assert got.points["loss"].keys() == {0, 2} and got.shipped["loss"].keys() == {0, 2}
    assert any("key ids 7" in m for m in got.corrupt)


def test_rows_of_a_stream_no_event_defines_are_skipped_and_named(tmp_path: Path) -> None:
    """Rows of a stream with no schema are skipped and reported, not guessed at."""
    _log(tmp_path / "events-000.log", _event(KeyDefined(id=1, name="loss")))
    row = struct.pack("<qddfHH", 0, 1.0, 2.0, 0.0, 1, 0x5752)
    _segment(tmp_path / "points-000-001-00000.seg", 1, row, 32)
    got = read_back(tmp_path)
    assert got.points == {}
    assert any("points-000-001-00000.seg" in m and "stream 1" in m for m in got.corrupt)


def test_a_garbage_segment_header_costs_no_points(tmp_path: Path) -> None:
    """A segment whose header is garbage is read with the layout its name gives (its
    records are checksummed on their own), and the damage is reported."""
    _log(
        tmp_path / "events-000.log",
        _event(KeyDefined(id=1, name="loss")),
    )
    path = tmp_path / "points-000-000-00000.seg"
    records = _points((0, 1), (1, 1), (2, 1))
    header = _segment(path, 0, records, 24)
    check = checksum_of(path.name, records, header=zlib.crc32(header))
    with (tmp_path / "events-000.log").open("ab") as file:
        file.write(_frame(_event(check)))
    path.write_bytes(b"\xa5" * HEADER_SIZE + records)
    got = read_back(tmp_path)
    assert got.points["loss"].keys() == {0, 1, 2}
    assert any(path.name in m and "times may be off" in m for m in got.corrupt)


def test_a_zeroed_header_over_records_is_damage_not_a_new_segment(tmp_path: Path) -> None:
    """A segment whose header is all zeros holds nothing yet (it is being created) unless
    records follow it: then its points are read, and the lost start time is reported."""
    _log(tmp_path / "events-000.log", _event(KeyDefined(id=1, name="loss")))
    path = tmp_path / "points-000-000-00000.seg"
    path.write_bytes(bytes(HEADER_SIZE + 4 * POINT_SIZE))  # created, nothing written yet
    assert read_back(tmp_path) == ReadBack([KeyDefined(1, "loss")], {}, [], {}, [])
    path.write_bytes(bytes(HEADER_SIZE) + _points((0, 1), (1, 1)))
    got = read_back(tmp_path)
    assert got.points["loss"].keys() == {0, 1} and got.shipped["loss"].keys() == {0, 1}
    assert any(path.name in m and "times may be off" in m for m in got.corrupt)


def test_a_checksum_that_does_not_fit_its_segment_is_named_not_trusted(tmp_path: Path) -> None:
    """A checksum record whose range cannot be a segment's is reported and not used."""
    path = tmp_path / "points-000-000-00000.seg"
    records = _points((0, 1), (1, 1))
    _segment(path, 0, records, 24)
    bad = Checksum(file=path.name, start=10, end=10**12, crc=0, block=1, blocks="AAAA")
    _log(tmp_path / "events-000.log", _event(KeyDefined(id=1, name="loss")), _event(bad))
    got = read_back(tmp_path)
    assert got.points["loss"].keys() == {0, 1}
    assert any("does not fit" in m for m in got.corrupt)


def test_runs_written_with_one_checksum_per_range_still_read(tmp_path: Path) -> None:
    """A checksum without blocks (files written before them) still verifies its range,
    and a damaged byte there drops the range, reported."""
    path = tmp_path / "points-000-000-00000.seg"
    records = _points(*[(step, 1) for step in range(400)])
    _segment(path, 0, records, POINT_SIZE)
    old = Checksum(
        file=path.name, start=HEADER_SIZE, end=HEADER_SIZE + len(records), crc=zlib.crc32(records)
    )
    _log(tmp_path / "events-000.log", _event(KeyDefined(id=1, name="loss")), _event(old))
    assert read_back(tmp_path).points["loss"].keys() == set(range(400))
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    got = read_back(tmp_path)
    assert "loss" not in got.points
    assert any("fail their checksum" in m for m in got.corrupt)


def test_a_segment_cut_short_loses_only_its_missing_blocks(tmp_path: Path) -> None:
    """A sealed segment whose end is missing keeps the blocks it still holds whole and
    reports the bytes that are gone."""
    path = tmp_path / "points-000-000-00000.seg"
    records = _points(*[(step, 1) for step in range(1000)])  # 24,000 bytes: 6 blocks
    header = _segment(path, 0, records, POINT_SIZE)
    check = checksum_of(path.name, records, header=zlib.crc32(header))
    _log(tmp_path / "events-000.log", _event(KeyDefined(id=1, name="loss")), _event(check))
    os.truncate(path, 3 * BLOCK + 100)
    got = read_back(tmp_path)
    kept = (3 * BLOCK - HEADER_SIZE) // POINT_SIZE  # the records of the first three blocks
    assert sorted(got.points["loss"]) == list(range(kept))
    assert any("the file ends at byte" in m for m in got.corrupt)


def test_a_checksum_event_keeps_the_older_fields_readable(tmp_path: Path) -> None:
    """Old `Checksum` records (no blocks, no header CRC) decode; new ones round-trip."""
    from polytrack._convert import event_from_dict

    old = {"type": "crc", "file": "points-000-000-00000.seg", "start": 64, "end": 88, "crc": 5}
    assert event_from_dict(old) == Checksum("points-000-000-00000.seg", 64, 88, 5)
    new = checksum_of("points-000-000-00000.seg", b"x" * 9000, header=7)
    assert event_from_dict(json.loads(json.dumps(event_to_dict(new)))) == new
