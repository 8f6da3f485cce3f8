"""The system resource sampler: its thread, its metrics, NVML through a fake, failing writes."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from polytrack.capture.system import SystemSampler
from polytrack.errors import StoreError, TrackingWarning


class Recorder:
    """The write callback: keeps every sample, lets a test wait for some."""

    def __init__(self, fail_first: int = 0) -> None:
        self.samples: list[tuple[int, dict[str, float]]] = []
        self.calls = 0
        self._fail_first = fail_first
        self._changed = threading.Condition()

    def __call__(self, values: dict[str, float], step: int) -> None:
        with self._changed:
            self.calls += 1
            self._changed.notify_all()
            if self.calls <= self._fail_first:
                raise StoreError("no space left on device")
            self.samples.append((step, values))

    def wait_for(self, calls: int, timeout: float = 10.0) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.calls >= calls, timeout), self.calls


class FakeNvml:
    """NVML with two GPUs; GPU 1 has no power sensor, as some boards don't."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    class Utilization:
        def __init__(self, gpu: int) -> None:
            self.gpu, self.memory = gpu, gpu // 2

    class Memory:
        def __init__(self, used: int, total: int) -> None:
            self.used, self.total, self.free = used, total, total - used

    def __init__(self, *, init_fails: bool = False) -> None:
        self.init_fails = init_fails
        self.initialised = False
        self.shutdowns = 0
        self.power_calls = {0: 0, 1: 0}

    def nvmlInit(self) -> None:
        if self.init_fails:
            raise self.NVMLError("NVML_ERROR_DRIVER_NOT_LOADED")
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return self.Utilization(40 + handle)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return self.Memory(used=(handle + 1) * 2**30, total=8 * 2**30)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 60 + handle

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        self.power_calls[handle] += 1
        if handle == 1:
            raise self.NVMLError("NVML_ERROR_NOT_SUPPORTED")
        return 250_500  # milliwatts


def sampler(write: Callable[[dict[str, float], int], None], **kwargs: Any) -> SystemSampler:
    kwargs.setdefault("interval", 0.05)
    kwargs.setdefault("nvml", FakeNvml(init_fails=True))
    return SystemSampler(write, run_id="test", **kwargs)


def test_first_sample_at_once_then_every_interval() -> None:
    """A named thread samples at start and then each interval, at steps 0, 1, 2, ..."""
    recorder = Recorder()
    system = sampler(recorder, interval=0.05)
    system.start()
    try:
        recorder.wait_for(4)
        assert "polytrack-system-test" in [t.name for t in threading.enumerate()]
    finally:
        system.stop()
    steps = [step for step, _ in recorder.samples]
    assert steps == list(range(len(steps))) and system.samples == len(steps)
    first, *later = (values for _, values in recorder.samples)
    # No rate in the first sample: there is no earlier one to measure from.
    assert "system/cpu.percent" not in first and "system/proc.cpu_percent" not in first
    assert first["system/proc.rss"] > 0 and 0 < first["system/memory.percent"] < 100
    assert first["system/memory.used"] > 0 and first["system/memory.available"] > 0
    assert first.get("system/network.sent_bytes", 0.0) == 0.0  # cumulative since start
    for values in later:
        assert 0 <= values["system/cpu.percent"] <= 100
        assert values["system/proc.cpu_percent"] >= 0
    totals = [values.get("system/disk.write_bytes", 0.0) for _, values in recorder.samples]
    assert totals == sorted(totals)
    assert all(key.startswith("system/") for _, values in recorder.samples for key in values)


def test_stop_is_prompt_even_with_a_long_interval() -> None:
    """stop() wakes a thread waiting out an hour-long interval at once; it is idempotent."""
    recorder = Recorder()
    system = sampler(recorder, interval=3600)
    system.start()
    recorder.wait_for(1)
    started = time.monotonic()
    system.stop()
    assert time.monotonic() - started < 1.0
    system.stop()
    # Under a second after the first sample: no last sample, its CPU figure would be noise.
    assert [step for step, _ in recorder.samples] == [0]


def test_a_last_sample_is_taken_at_stop() -> None:
    """A run shorter than the interval still gets a sample with CPU figures at stop()."""
    recorder = Recorder()
    system = sampler(recorder, interval=3600)
    system.start()
    recorder.wait_for(1)
    time.sleep(1.05)
    system.stop()
    assert [step for step, _ in recorder.samples] == [0, 1]
    assert "system/proc.cpu_percent" in recorder.samples[1][1]


def test_gpu_metrics_come_from_nvml() -> None:
    """Per GPU: utilization, memory, temperature, power in watts; a missing sensor is
    skipped and not asked again; NVML is shut down at stop()."""
    nvml = FakeNvml()
    system = sampler(Recorder(), nvml=nvml)
    system.sample()
    values = system.sample()
    gpu = {key: value for key, value in values.items() if key.startswith("system/gpu.")}
    assert gpu == {
        "system/gpu.0.utilization": 40.0,
        "system/gpu.0.memory_used": float(2**30),
        "system/gpu.0.memory_percent": 12.5,
        "system/gpu.0.temperature": 60.0,
        "system/gpu.0.power_watts": 250.5,
        "system/gpu.1.utilization": 41.0,
        "system/gpu.1.memory_used": float(2**31),
        "system/gpu.1.memory_percent": 25.0,
        "system/gpu.1.temperature": 61.0,
    }
    assert nvml.power_calls == {0: 2, 1: 1}
    system.stop()
    assert nvml.shutdowns == 1


def test_no_gpu_metrics_where_nvml_finds_no_driver() -> None:
    """nvmlInit failing means no GPU metrics, no warning, and the rest as usual."""
    nvml = FakeNvml(init_fails=True)
    system = sampler(Recorder(), nvml=nvml)
    values = system.sample()
    system.stop()
    assert values["system/proc.rss"] > 0
    assert not [key for key in values if key.startswith("system/gpu.")]
    assert nvml.shutdowns == 0


def test_children_are_counted() -> None:
    """Live child processes show up in the children count, RSS and CPU."""
    system = sampler(Recorder())
    child = subprocess.Popen(["sleep", "10"])
    try:
        system.sample()
        values = system.sample()
    finally:
        child.kill()
        child.wait()
        system.stop()
    assert values["system/proc.children"] >= 1
    assert values["system/proc.children_rss"] > 0
    assert values["system/proc.children_cpu_percent"] >= 0


def test_a_failing_write_warns_once_and_sampling_goes_on() -> None:
    """A write that raises (full disk) warns once; later samples are still written."""
    recorder = Recorder(fail_first=3)
    system = sampler(recorder, interval=0.02)
    with pytest.warns(TrackingWarning, match="could not record system metrics") as record:
        system.start()
        try:
            recorder.wait_for(6)
        finally:
            system.stop()
    assert len(record) == 1
    assert [step for step, _ in recorder.samples][:3] == [3, 4, 5]
