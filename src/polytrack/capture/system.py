"""The system resource sampler: what a run costs the machine, recorded as `system/*` metrics.

A thread (`polytrack-system-<run>`), owned by the run and stopped by `finish()`, takes one
sample as soon as it starts, then one every `interval` seconds, and writes each through
the run's thread-safe sample write at its own step (the sample's index: 0, 1, 2, ...).

| key | unit | what |
| --- | --- | --- |
| `system/cpu.percent` | % of all cores | the machine's CPU use since the previous sample |
| `system/memory.used`, `.available` | bytes | the machine's memory, as psutil reports it |
| `system/memory.percent` | % | |
| `system/proc.cpu_percent` | % of one core | this process since the previous sample |
| `system/proc.rss` | bytes | this process's resident memory |
| `system/proc.children` | count | live descendants (DataLoader workers, subprocesses) |
| `system/proc.children_cpu_percent` | % of one core | their CPU use since the previous sample |
| `system/proc.children_rss` | bytes | the sum of their resident memory |
| `system/disk.read_bytes`, `.write_bytes` | bytes | the machine's disk I/O since start |
| `system/network.sent_bytes`, `.recv_bytes` | bytes | the machine's network I/O since start |
| `system/gpu.<i>.utilization` | % | NVML's busy time of GPU `i` |
| `system/gpu.<i>.memory_used` | bytes | |
| `system/gpu.<i>.memory_percent` | % | |
| `system/gpu.<i>.temperature` | °C | |
| `system/gpu.<i>.power_watts` | W | |

Choices, and why:

- **Disk and network are cumulative since start, not rates.** A counter read at each sample
  loses nothing when a sample is late or missing, starts at an honest 0 in the first
  sample, and gives the rate over any window by differencing two points (each point has
  its time); a rate would be an average over whatever interval the thread happened to get.
- **CPU percentages are rates**, so the first sample (taken at start, to give even a
  short run one point) has none: a value over a few microseconds would be noise. They are
  computed from `cpu_times()` deltas kept here, not with `psutil.cpu_percent()`, whose
  "since the last call" state is process-global and shared with the user's own calls.
- **One last sample at `stop()`** when at least a second (or `interval`, if shorter) has
  passed since the previous one: the run's final totals and a CPU figure for runs shorter
  than the interval, without a noisy value over a few milliseconds.
- **Children are found through `/proc/<pid>/task/<tid>/children`** on Linux, about 30 µs;
  `_psutil().Process.children()` reads every process's `/proc/<pid>/stat` (2 ms with 70
  processes, tens of ms on a busy node). Their RSS is a plain sum: pages shared with the
  parent after a fork count once per process (PSS would be exact but costs a read of
  each `smaps`). A child that exits between two samples takes its last CPU with it.
- **GPUs come from NVML** (`pynvml`, the `nvidia-ml-py` package) when it imports and
  `nvmlInit()` succeeds, else they are absent, quietly. NVML numbers every GPU of the
  machine, whatever `CUDA_VISIBLE_DEVICES` says. A reading that fails before it ever
  succeeded (power on a board without the sensor) is not asked again.

In a distributed job every rank samples its own process and machine, written as
`system/rank<N>/...` (`rank_prefix`): rank 0's into the run's journal, the others' into
their side journals of the run (`polytrack.ranks`), so the ranks' series never mix.

One sample costs 0.3 to 1 ms of CPU, NVML's readings of a GPU included (measured in
`benchmarks/bench_capture.py`): at the default 10 s interval, about 0.01% of one core.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

if TYPE_CHECKING:
    import psutil

from polytrack import _forkgate
from polytrack.errors import TrackingWarning

__all__ = ["PREFIX", "Nvml", "SystemSampler", "rank_prefix"]

PREFIX: Final = "system/"


def rank_prefix(rank: int | None) -> str:
    """The keys' prefix of a process's samples: `system/`, or in a distributed job
    `system/rank<N>/`, so that each rank's samples are a series of their own in the one
    shared run (`system/rank1/cpu.percent`; docs/distributed.md).

    Example:
        >>> rank_prefix(1)
        'system/rank1/'
    """
    return PREFIX if rank is None else f"{PREFIX}rank{rank}/"


# The last sample at stop() needs this much time since the previous one (or `interval`).
_FINAL_SAMPLE_AFTER: Final = 1.0
# What is read of each GPU; a reading may give several metrics (memory: used and percent).
_READINGS: Final = ("utilization", "memory", "temperature", "power")


class Nvml(Protocol):
    """The part of NVML's Python binding (module `pynvml`) that the sampler calls.

    Pass any object with these members as `SystemSampler(nvml=...)`; tests pass a small
    fake class, a machine with GPUs gets the `pynvml` module itself.
    """

    NVML_TEMPERATURE_GPU: int

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any: ...  # `.gpu`, in %
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...  # `.used`, `.total`, bytes
    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> Any: ...  # °C
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> Any: ...  # milliwatts


class SystemSampler:
    """Samples CPU, memory, disk, network and GPUs from a background thread.

    Args:
        write: records one sample, `write(values, step)`; the run passes
            `JournalWriter.write_sample`. If it raises, the sampler warns once
            (`TrackingWarning`) and goes on sampling.
        interval: seconds between samples.
        run_id: names the thread, `polytrack-system-<run_id>`.
        pid: the process to watch (default: this one).
        nvml: an NVML binding (see `Nvml`); default: `pynvml` where it is installed.
        delay: seconds before the first sample (`init()` passes the snapshot's quiet
            start, `polytrack.capture.snapshot.QUIET_START`); `stop()` cuts it short.
        prefix: what the written keys start with, in place of `system/`: a rank's
            (`rank_prefix`) in a distributed job. `sample()` returns `system/` keys.

    Example:
        >>> got = []
        >>> sampler = SystemSampler(lambda values, step: got.append(step), interval=10.0,
        ...                         run_id="demo")
        >>> sampler.start(); sampler.stop()
        >>> got
        [0]
    """

    def __init__(
        self,
        write: Callable[[dict[str, float], int], None],
        *,
        interval: float,
        run_id: str,
        pid: int | None = None,
        nvml: Nvml | None = None,
        delay: float = 0.0,
        prefix: str = PREFIX,
    ) -> None:
        self._write = write
        self._prefix = prefix
        self._interval = interval
        self._delay = delay
        self._run_id = run_id
        self._pid = pid
        self._nvml = nvml
        self._step = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False
        # Sampling state, touched only by whoever samples (the thread, once started).
        self._process: psutil.Process | None = None
        self._children: dict[int, tuple[psutil.Process, float]] = {}
        self._children_proc_file: bool | None = None
        self._last_time: float | None = None
        self._last_cpu: tuple[float, float] | None = None
        self._last_proc_cpu: float | None = None
        self._io_base: dict[str, float] | None = None
        self._gpus: _Gpus | None = None
        self._gpus_tried = False

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread; its first sample is taken after `delay` seconds, or at once
        when `stop()` comes first (so every started sampler records at least one sample).
        A second call does nothing, and so does a call after `stop()`."""
        if self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(
            target=self._loop, name=f"polytrack-system-{self._run_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Wake the thread, let it take its last sample, and join it. Idempotent.

        The sampler does not start again afterwards.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                self._warn(f"polytrack's system sampler did not stop within {timeout} s")
        if thread is None:
            self._close_gpus()  # sample() was called without the thread

    @property
    def samples(self) -> int:
        """How many samples were taken (and handed to `write`) so far."""
        return self._step

    def _loop(self) -> None:
        try:
            # A quiet start (issue 21): the first sample imports psutil and reads /proc,
            # holding the GIL while the user's loop starts; stop() ends the wait.
            if self._delay > 0:
                self._stop.wait(self._delay)
            next_at = time.monotonic()
            while True:
                self._sample_and_write()
                next_at += self._interval
                now = time.monotonic()
                if next_at < now:  # fell behind (a suspended machine): don't catch up
                    next_at = now + self._interval
                if self._stop.wait(next_at - now):
                    break
            last = self._last_time
            if last is not None and time.monotonic() - last >= min(
                _FINAL_SAMPLE_AFTER, self._interval
            ):
                self._sample_and_write()
        finally:
            self._close_gpus()

    def _sample_and_write(self) -> None:
        with _forkgate.held():  # psutil's import and locks, NVML's: never held at a fork
            values = self.sample()
        if self._prefix != PREFIX:
            cut = len(PREFIX)
            values = {self._prefix + key[cut:]: value for key, value in values.items()}
        try:
            self._write(values, self._step)
        except Exception as exc:  # a full disk, a closed journal: training goes on
            self._warn(f"polytrack could not record system metrics: {exc}")
        self._step += 1

    def _warn(self, message: str) -> None:
        """Warn once; from a background thread, where a warning turned error would kill it."""
        if self._warned:
            return
        self._warned = True
        with contextlib.suppress(Exception):  # `-W error`: nobody could catch it here
            warnings.warn(message, TrackingWarning, stacklevel=2)

    # -- one sample -------------------------------------------------------------------------

    def sample(self) -> dict[str, float]:
        """Take one sample now and return it, without writing it.

        The thread calls this; call it yourself only while the sampler is not started
        (it keeps the previous sample's counters to compute rates).
        """
        now = time.monotonic()
        elapsed = None if self._last_time is None else now - self._last_time
        self._last_time = now
        values: dict[str, float] = {}
        for collect in (
            self._collect_cpu,
            self._collect_memory,
            self._collect_process,
            self._collect_children,
            self._collect_io,
            self._collect_gpus,
        ):
            try:
                collect(values, elapsed)
            except Exception:  # a source that fails is left out of this sample
                continue
        return values

    def _collect_cpu(self, out: dict[str, float], elapsed: float | None) -> None:
        busy, total = _busy_total(_psutil().cpu_times())
        last, self._last_cpu = self._last_cpu, (busy, total)
        if last is not None and total > last[1]:
            out[PREFIX + "cpu.percent"] = _clamp(100.0 * (busy - last[0]) / (total - last[1]))

    def _collect_memory(self, out: dict[str, float], elapsed: float | None) -> None:
        memory = _psutil().virtual_memory()
        out[PREFIX + "memory.used"] = float(memory.used)
        out[PREFIX + "memory.available"] = float(memory.available)
        out[PREFIX + "memory.percent"] = float(memory.percent)

    def _collect_process(self, out: dict[str, float], elapsed: float | None) -> None:
        if self._process is None:
            self._process = _psutil().Process(self._pid)
        process = self._process
        with process.oneshot():
            times = process.cpu_times()
            rss = process.memory_info().rss
        cpu = times.user + times.system
        last, self._last_proc_cpu = self._last_proc_cpu, cpu
        if last is not None and elapsed:
            out[PREFIX + "proc.cpu_percent"] = max(0.0, 100.0 * (cpu - last) / elapsed)
        out[PREFIX + "proc.rss"] = float(rss)

    def _collect_children(self, out: dict[str, float], elapsed: float | None) -> None:
        pid = self._pid if self._pid is not None else os.getpid()
        if self._children_proc_file is None:
            self._children_proc_file = os.path.exists(f"/proc/{pid}/task/{pid}/children")
        if self._children_proc_file:
            pids = _descendants(pid)
        else:
            parent = self._process or _psutil().Process(pid)
            pids = [child.pid for child in parent.children(recursive=True)]
        known, seen = self._children, {}
        cpu_delta = rss = 0.0
        for child_pid in pids:
            try:
                entry = known.get(child_pid)
                process = entry[0] if entry else _psutil().Process(child_pid)
                with process.oneshot():
                    times = process.cpu_times()
                    child_rss = process.memory_info().rss
            except _psutil().Error:  # exited meanwhile
                continue
            cpu = times.user + times.system
            # A child new since the last sample spent all its CPU time within the interval.
            cpu_delta += max(0.0, cpu - entry[1]) if entry else cpu
            rss += child_rss
            seen[child_pid] = (process, cpu)
        self._children = seen
        out[PREFIX + "proc.children"] = float(len(seen))
        if elapsed:
            out[PREFIX + "proc.children_cpu_percent"] = 100.0 * cpu_delta / elapsed
        out[PREFIX + "proc.children_rss"] = rss

    def _collect_io(self, out: dict[str, float], elapsed: float | None) -> None:
        counters: dict[str, float] = {}
        disk = _psutil().disk_io_counters()
        if disk is not None:  # None: no disks that psutil can see (some containers)
            counters["disk.read_bytes"] = float(disk.read_bytes)
            counters["disk.write_bytes"] = float(disk.write_bytes)
        net = _psutil().net_io_counters()
        if net is not None:
            counters["network.sent_bytes"] = float(net.bytes_sent)
            counters["network.recv_bytes"] = float(net.bytes_recv)
        if self._io_base is None:
            self._io_base = counters
        base = self._io_base
        for name, value in counters.items():
            start = base.setdefault(name, value)
            out[PREFIX + name] = max(0.0, value - start)

    def _collect_gpus(self, out: dict[str, float], elapsed: float | None) -> None:
        if not self._gpus_tried:
            self._gpus_tried = True
            self._gpus = _Gpus.open(self._nvml)
        if self._gpus is not None:
            self._gpus.sample(out)

    def _close_gpus(self) -> None:
        gpus, self._gpus = self._gpus, None
        if gpus is not None:
            gpus.close()


class _Gpus:
    """NVML, initialised once per sampler; readings that never worked are not retried."""

    def __init__(self, nvml: Nvml, handles: list[tuple[int, Any]]) -> None:
        self._nvml = nvml
        self._handles = handles
        self._worked: set[tuple[int, str]] = set()
        self._unsupported: set[tuple[int, str]] = set()

    @classmethod
    def open(cls, nvml: Nvml | None) -> _Gpus | None:
        """NVML's devices, or None where NVML is not installed or finds no driver."""
        if nvml is None:
            try:
                nvml = cast(Nvml, importlib.import_module("pynvml"))
            except Exception:  # not installed, or broken: no GPU metrics
                return None
        try:
            nvml.nvmlInit()
        except Exception:  # no driver, no device: a CPU machine
            return None
        handles = []
        try:
            for index in range(int(nvml.nvmlDeviceGetCount())):
                try:
                    handles.append((index, nvml.nvmlDeviceGetHandleByIndex(index)))
                except Exception:  # a device NVML cannot open is left out
                    continue
        except Exception:
            _shutdown(nvml)
            return None
        if not handles:
            _shutdown(nvml)
            return None
        return cls(nvml, handles)

    def sample(self, out: dict[str, float]) -> None:
        for index, handle in self._handles:
            for reading in _READINGS:
                key = (index, reading)
                if key in self._unsupported:
                    continue
                try:
                    values = self._read(reading, handle)
                except Exception:  # NVMLError_NotSupported, a lost GPU, ...
                    if key not in self._worked:
                        self._unsupported.add(key)
                    continue
                self._worked.add(key)
                for metric, value in values.items():
                    out[f"{PREFIX}gpu.{index}.{metric}"] = value

    def _read(self, reading: str, handle: Any) -> dict[str, float]:
        nvml = self._nvml
        if reading == "utilization":
            return {"utilization": float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)}
        if reading == "memory":
            info = nvml.nvmlDeviceGetMemoryInfo(handle)
            used, total = float(info.used), float(info.total)
            values = {"memory_used": used}
            if total > 0:
                values["memory_percent"] = 100.0 * used / total
            return values
        if reading == "temperature":
            sensor = nvml.NVML_TEMPERATURE_GPU
            return {"temperature": float(nvml.nvmlDeviceGetTemperature(handle, sensor))}
        return {"power_watts": float(nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0}

    def close(self) -> None:
        _shutdown(self._nvml)


def _shutdown(nvml: Nvml) -> None:
    with contextlib.suppress(Exception):  # nothing to do about a driver that won't let go
        nvml.nvmlShutdown()


def _busy_total(times: Any) -> tuple[float, float]:
    """CPU seconds busy and in total, as `psutil.cpu_percent` counts them."""
    total = sum(times)
    if sys.platform.startswith("linux"):
        # Linux counts guest time inside user time already.
        total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    busy = total - times.idle - getattr(times, "iowait", 0.0)
    return busy, total


def _clamp(percent: float) -> float:
    return min(100.0, max(0.0, percent))


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, from the children files of each of its threads."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:  # exited meanwhile
            continue
        for tid in tids:
            try:
                fd = os.open(f"/proc/{parent}/task/{tid}/children", os.O_RDONLY)
            except OSError:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            finally:
                os.close(fd)
            for child in data.split():
                found.append(int(child))
                todo.append(int(child))
    return found


def _psutil() -> ModuleType:
    """psutil, imported on the sampler's thread: its ~15 ms are not init()'s to pay."""
    import psutil

    return psutil
