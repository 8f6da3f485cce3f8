"""A run's start and end stay light (issue 21): what init() loads, what the first second
after it runs, and what finish() still records. Timing itself is in
benchmarks/bench_startup.py, never asserted here."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import polytrack
from polytrack._names import COUNTERS, default_name
from polytrack.capture.snapshot import SnapshotCapture
from polytrack.capture.system import SystemSampler
from polytrack.models import EnvironmentState, Event, HardwareState
from polytrack.store.local import INDEX_FILE

# Long enough that nothing but stop() ends the quiet start within a test.
_HOUR = 3600.0


def test_init_without_captures_loads_no_capture_module(home: Path) -> None:
    """`init(capture=False)` imports none of the capture modules, nor hashlib (OpenSSL)."""
    code = (
        "import sys, polytrack\n"
        f"run = polytrack.init(dir={str(home)!r}, capture=False)\n"
        "run.log_metrics({'loss': 0.5}, step=0)\n"
        "run.finish()\n"
        "print(sorted(m for m in sys.modules if m.startswith('polytrack.capture')"
        " or m == 'hashlib'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stderr
    assert polytrack.get_run(polytrack.runs(home=home)[0].id, home=home).metrics["loss"].count


def test_subpackages_are_attributes_loaded_on_first_use() -> None:
    """`polytrack.importers`, `.integrations` and `.tracking` are reachable after `import
    polytrack` alone, and none is loaded before it is named."""
    code = (
        "import sys, polytrack\n"
        "names = ('importers', 'integrations', 'tracking')\n"
        "print([f'polytrack.{n}' in sys.modules for n in names])\n"
        "print(polytrack.importers.mlflow.__module__, polytrack.tracking.Run.__name__,\n"
        "      polytrack.integrations.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split("\n")[:2] == [
        "[False, False, False]",
        "polytrack.importers Run polytrack.integrations",
    ], out.stderr


def test_default_names_count_in_the_same_file_as_before(home: Path) -> None:
    """The project's counter file is still named by blake2b (now from `_blake2`): a home
    made before keeps counting where it was."""
    key = hashlib.blake2b(b"proj", digest_size=8).hexdigest()
    (home / COUNTERS).mkdir(parents=True)
    (home / COUNTERS / key).write_text("41\n")
    assert default_name(home, "proj", "abcdefgh").endswith("-42")


@pytest.mark.usefixtures("hot_path")
def test_early_segments_are_mapped_at_start_and_gone_after_finish(home: Path) -> None:
    """The first segments' successors are mapped when the run starts, so a loop logging at
    once never makes one itself; those not used are removed by finish()."""
    settings = polytrack.Settings.from_env().evolve(home=home)
    run = polytrack.init(settings=settings, capture=False)
    spares = sorted(p.name for p in run.dir.glob("points-000-000-*.seg"))
    assert spares == [f"points-000-000-{i:05d}.seg" for i in range(4)]  # 64 + 128..512 KiB
    capacity = (settings.first_segment_bytes - 64) // 24
    points = capacity * 3 + 10  # into the third segment (of 64, 128, 256 KiB)
    for step in range(points):
        run.log_metrics({"m": float(step)}, step=step)
    assert len(list(run.dir.glob("points-000-000-*.seg"))) == 4  # none made by the loop
    run.finish()
    left = sorted(p.name for p in run.dir.glob("points-000-000-*.seg"))
    assert left == [f"points-000-000-{i:05d}.seg" for i in range(3)]  # the unused one gone
    assert sum((run.dir / name).stat().st_size for name in left) <= points * 24 + 64 * 3
    steps, values = polytrack.get_run(run.id, home=home).history("m")
    assert steps.tolist() == list(range(points)) and values.tolist() == list(map(float, steps))


def test_system_sampler_waits_out_its_delay_or_samples_at_stop() -> None:
    """With `delay`, the first sample waits (a quiet start); stop() ends the wait and still
    takes that one sample."""
    written: list[int] = []
    sampled = threading.Event()

    def write(values: dict[str, float], step: int) -> None:
        written.append(step)
        sampled.set()

    system = SystemSampler(write, interval=0.05, run_id="quiet", delay=_HOUR)
    system.start()
    try:
        assert not sampled.wait(0.3)  # without the delay: sampled at once
    finally:
        system.stop()
    assert written == [0]


def _snapshot(home: Path, tmp_path: Path, record: list[Event], quiet: float) -> SnapshotCapture:
    settings = polytrack.Settings.from_env().evolve(home=home)
    return SnapshotCapture.start(
        settings=settings,
        directory=tmp_path,
        attempt=0,
        run_id="quiet",
        record=record.append,
        warn=lambda kind, message: None,
        environ={},
        cwd=tmp_path,  # no repository: git is recorded unavailable, inline
        quiet=quiet,
    )


def test_environment_and_hardware_wait_for_the_quiet_start_or_stop(
    home: Path, tmp_path: Path
) -> None:
    """The heavy parts of the snapshot are not taken in the first second after init();
    finish() (stop) takes them at once, so a short run's snapshot is complete."""
    events: list[Event] = []
    snapshot = _snapshot(home, tmp_path, events, quiet=_HOUR)
    snapshot.settle()
    thread = next(t for t in threading.enumerate() if t.name == "polytrack-snapshot-quiet")
    thread.join(0.3)  # without the quiet start: done by now, or close to it
    assert thread.is_alive()
    assert not any(isinstance(e, EnvironmentState | HardwareState) for e in events)
    snapshot.stop()
    assert not thread.is_alive()
    kinds = {type(e) for e in events}
    assert EnvironmentState in kinds and HardwareState in kinds


def test_environment_and_hardware_come_after_the_quiet_start(home: Path, tmp_path: Path) -> None:
    """Without stop(), the thread takes them once the quiet start is over."""
    events: list[Event] = []
    snapshot = _snapshot(home, tmp_path, events, quiet=0.0)
    snapshot.settle()
    thread = next(t for t in threading.enumerate() if t.name == "polytrack-snapshot-quiet")
    thread.join(60)
    kinds = {type(e) for e in events}
    assert EnvironmentState in kinds and HardwareState in kinds
    snapshot.stop()


def test_a_run_finished_at_once_has_the_whole_snapshot_and_a_sample(home: Path) -> None:
    """finish() right after init() (inside the quiet first second) records everything a
    longer run records: the environment, the hardware and one system sample."""
    run = polytrack.init(dir=home)
    run.finish()
    got = polytrack.get_run(run.id, home=home)
    snap = got.snapshot()
    assert snap.environment is not None and snap.hardware is not None
    assert any(key.startswith("system/") for key in got.metrics)


def test_finish_leaves_indexing_to_the_next_reader(home: Path) -> None:
    """By default finish() does not index the run, even where numpy is loaded (which used
    to make it); the next reader does, and lists it all the same."""
    import numpy  # noqa: F401

    with polytrack.init(dir=home, capture=False) as run:
        run.log_metrics({"loss": 0.5}, step=0)
    assert not (home / INDEX_FILE).exists()
    (view,) = polytrack.runs(home=home)
    assert view.id == run.id and view.metrics["loss"].count == 1
    assert (home / INDEX_FILE).exists()


def test_hardware_is_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep's runs share the first run's reading of the machine (psutil, NVML): the same
    answer a fresh reading gives; an NVML binding passed in is always asked."""
    from polytrack.capture import hardware

    monkeypatch.setattr(hardware, "_machine", None)
    first = hardware.capture_hardware()
    assert hardware.capture_hardware() is first  # kept, not read again
    assert first == hardware._read_hardware(hardware.load_nvml())  # nothing lost by it

    class NoDriver:
        def nvmlInit(self) -> None:
            raise RuntimeError("no driver")

    assert hardware.capture_hardware(nvml=NoDriver()) is not first
