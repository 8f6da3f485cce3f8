"""The machine a run ran on: CPU model and counts, memory, and NVIDIA GPUs via NVML."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
from types import ModuleType
from typing import Any

from polytrack.models import GpuInfo, HardwareState

__all__ = ["capture_hardware", "load_nvml"]

# The machine, as read by the first run of this process: it does not change under the
# process, and a sweep of many short runs in one process reads it once (psutil's calls,
# NVML's initialisation: up to seconds on some GPU hosts; issue 21).
_machine: HardwareState | None = None


def capture_hardware(*, nvml: ModuleType | Any | None = None) -> HardwareState:
    """CPU, memory and GPUs of this machine; absent parts are None or empty, never errors.

    Args:
        nvml: the NVML bindings (`pynvml` from nvidia-ml-py); default: loaded when the
            package is installed, and the answer is kept for the process' later calls.
            GPUs are listed only where NVML initialises.
    """
    global _machine
    if nvml is None:
        if _machine is None:
            _machine = _read_hardware(load_nvml())
        return _machine
    return _read_hardware(nvml)


def _read_hardware(nvml: ModuleType | Any | None) -> HardwareState:
    import psutil  # ~5 ms: only on the capture thread, never at `import polytrack`

    try:
        physical = psutil.cpu_count(logical=False)
    except (OSError, RuntimeError):
        physical = None
    try:
        memory: int | None = int(psutil.virtual_memory().total)
    except (OSError, RuntimeError):
        memory = None
    return HardwareState(
        cpu_model=_cpu_model(),
        cpu_logical=os.cpu_count(),
        cpu_physical=physical,
        memory_total=memory,
        gpus=_gpus(nvml),
    )


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model"):
                    return value.strip() or None
    except OSError:
        pass
    return platform.processor() or None


def load_nvml() -> ModuleType | None:
    """`pynvml` when nvidia-ml-py is installed, else None (without raising)."""
    if importlib.util.find_spec("pynvml") is None:
        return None
    try:
        import pynvml  # type: ignore[import-not-found, unused-ignore]
    except Exception:  # a broken install is "no GPU" to us
        return None
    return pynvml  # type: ignore[no-any-return, unused-ignore]


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _gpus(nvml: Any) -> tuple[GpuInfo, ...]:
    if nvml is None:
        return ()
    try:
        nvml.nvmlInit()
    except Exception:  # no driver, no device: the common case on CPU machines
        return ()
    gpus: list[GpuInfo] = []
    try:
        try:
            driver: str | None = _text(nvml.nvmlSystemGetDriverVersion())
        except Exception:
            driver = None
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            try:
                total: int | None = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
            except Exception:
                total = None
            try:
                uuid: str | None = _text(nvml.nvmlDeviceGetUUID(handle))
            except Exception:
                uuid = None
            gpus.append(
                GpuInfo(
                    index=index,
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    memory_total=total,
                    uuid=uuid,
                    driver=driver,
                )
            )
    except Exception:  # a device that vanished mid-query: keep what was read
        pass
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
    return tuple(gpus)
