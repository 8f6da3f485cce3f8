"""The snapshot's collectors one by one: code, environment, hardware and seeds."""

from __future__ import annotations

import os
import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from polytrack.capture.code import capture_code
from polytrack.capture.environment import (
    capture_environment,
    installed_packages,
    selected_variables,
)
from polytrack.capture.hardware import capture_hardware
from polytrack.capture.seeds import seed_everything
from polytrack.errors import InvalidInputError
from polytrack.redact import REDACTED
from polytrack.settings import DEFAULT_ENV_ALLOWLIST, Settings

# -- code -----------------------------------------------------------------------------------


def _main(**attributes: object) -> types.ModuleType:
    module = types.ModuleType("__main__")
    for name, value in attributes.items():
        setattr(module, name, value)
    return module


def test_code_records_the_script_argv_and_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script run is recorded by its absolute path, its argv (secrets redacted) and cwd."""
    monkeypatch.chdir(tmp_path)
    code = capture_code(
        argv=["train.py", "--lr", "0.1", "--token", "abc"],
        main=_main(__file__="train.py"),
        environ={},
    )
    assert code.entrypoint == str(tmp_path / "train.py")
    assert code.argv == ("train.py", "--lr", "0.1", "--token", REDACTED)
    assert code.cwd == str(tmp_path)
    assert code.executable == sys.executable
    assert code.notebook is None


def test_code_records_a_module_run_with_dash_m() -> None:
    """`python -m pkg` is recorded as the entrypoint "-m pkg", not pkg/__main__.py."""
    spec = types.SimpleNamespace(name="trainer.__main__")
    code = capture_code(argv=["/x/trainer/__main__.py"], main=_main(__spec__=spec), environ={})
    assert code.entrypoint == "-m trainer"


def test_code_has_no_entrypoint_in_a_repl() -> None:
    """`python -c` and an interactive interpreter have no script to record."""
    assert capture_code(argv=["-c"], main=_main(), environ={}).entrypoint is None
    assert capture_code(argv=[""], main=_main(), environ={}).entrypoint is None


# -- environment ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "recorded"),
    [
        ("CUDA_VISIBLE_DEVICES", "0,1", "0,1"),
        ("OMP_NUM_THREADS", "4", "4"),
        ("PYTHONHASHSEED", "0", "0"),
        ("HF_TOKEN", "hf_abc", None),
        ("HF_HOME", "/data/hf", "/data/hf"),
        ("POLYTRACK_API_KEY", "k", None),
        ("POLYTRACK_BACKEND", "mlflow+https://bob:pw@host", f"mlflow+https://bob:{REDACTED}@host"),
        ("TF_PASSWORD", "x", None),
        ("SLURM_JOB_ID", "77", "77"),
        ("AWS_SECRET_ACCESS_KEY", "s", None),
        ("HOME", "/root", None),
        ("GITHUB_TOKEN", "ghp_x", None),
        ("TORCH_HOME", "/t", "/t"),
        ("WANDB_API_KEY", "w", None),
    ],
)
def test_environment_variables_by_allowlist_never_secrets(
    name: str, value: str, recorded: str | None
) -> None:
    """Variables are recorded by the default allowlist; secret names never, URL
    credentials stripped."""
    chosen = selected_variables({name: value}, DEFAULT_ENV_ALLOWLIST)
    assert chosen.get(name) == recorded


def test_allowlist_patterns_are_configurable() -> None:
    """POLYTRACK_ENV_ALLOWLIST replaces the patterns; `default` keeps the built-in ones."""
    settings = Settings.from_env({"HOME": "/h", "POLYTRACK_ENV_ALLOWLIST": "default, MY_*"})
    environ = {"MY_FLAG": "1", "OMP_NUM_THREADS": "2", "OTHER": "x", "MY_SECRET": "s"}
    assert selected_variables(environ, settings.env_allowlist) == {
        "MY_FLAG": "1",
        "OMP_NUM_THREADS": "2",
    }
    only = Settings.from_env({"HOME": "/h", "POLYTRACK_ENV_ALLOWLIST": "OTHER"})
    assert selected_variables(environ, only.env_allowlist) == {"OTHER": "x"}


def _site(root: Path, *names: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).mkdir()
    return root


def test_packages_come_from_dist_info_names(tmp_path: Path) -> None:
    """Distributions are read from their metadata directories, names normalised, and the
    first path entry wins as it does for imports."""
    first = _site(tmp_path / "a", "Foo_Bar-1.0.dist-info", "numpy-2.0.0.dist-info")
    second = _site(tmp_path / "b", "numpy-1.0.0.dist-info", "legacy-0.3-py3.11.egg-info")
    odd = second / "weird.egg-info"
    odd.mkdir()
    (odd / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: Weird.Pkg\nVersion: 4.5\n")
    packages = installed_packages([str(first), str(second), str(tmp_path / "missing")])
    assert packages == {"foo-bar": "1.0", "legacy": "0.3", "numpy": "2.0.0", "weird-pkg": "4.5"}


def test_package_list_is_cached_until_a_path_entry_changes(tmp_path: Path) -> None:
    """The cache answers while the entries' modification times stay; installing into an
    entry (which changes its mtime) invalidates it."""
    site = _site(tmp_path / "site", "a-1.0.dist-info")
    cache = tmp_path / "cache"
    assert installed_packages([str(site)], cache_dir=cache) == {"a": "1.0"}
    stamp = site.stat()
    (site / "b-2.0.dist-info").mkdir()
    os.utime(site, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # as if unchanged
    assert installed_packages([str(site)], cache_dir=cache) == {"a": "1.0"}  # from the cache
    os.utime(site, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    assert installed_packages([str(site)], cache_dir=cache) == {"a": "1.0", "b": "2.0"}


def test_a_corrupt_package_cache_is_rebuilt(tmp_path: Path) -> None:
    """A cache file that does not parse costs a rescan, never an error."""
    site = _site(tmp_path / "site", "a-1.0.dist-info")
    cache = tmp_path / "cache"
    installed_packages([str(site)], cache_dir=cache)
    for file in cache.iterdir():
        file.write_text("{not json")
    assert installed_packages([str(site)], cache_dir=cache) == {"a": "1.0"}


def test_environment_of_this_interpreter(tmp_path: Path) -> None:
    """The real interpreter's record has its version, platform and installed packages."""
    env = capture_environment(
        allowlist=("CONDA_*",), cache_dir=tmp_path, environ={"CONDA_DEFAULT_ENV": "ml"}
    )
    assert env.python == ".".join(map(str, sys.version_info[:3]))
    assert env.implementation == sys.implementation.name
    assert env.platform.startswith(os.uname().sysname)
    assert env.packages["numpy"] == np.__version__
    assert env.packages["attrs"]
    assert env.conda_env == "ml"
    assert env.variables == {"CONDA_DEFAULT_ENV": "ml"}


# -- hardware -------------------------------------------------------------------------------


class FakeNvml:
    """The few NVML calls polytrack makes, answering for two GPUs."""

    def __init__(self, *, fail_init: bool = False) -> None:
        self.fail_init = fail_init
        self.shut_down = False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"550.54"

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return f"NVIDIA H100 #{handle}"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(total=80 * 2**30, used=0, free=80 * 2**30)

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-{handle}"


def test_hardware_of_this_machine() -> None:
    """CPU counts and memory of the real machine; no GPU where NVML is absent."""
    hw = capture_hardware(nvml=FakeNvml(fail_init=True))
    assert hw.cpu_logical == os.cpu_count()
    assert hw.cpu_physical is None or 1 <= hw.cpu_physical <= (hw.cpu_logical or 1)
    assert hw.memory_total and hw.memory_total > 2**26
    assert hw.gpus == ()


def test_gpus_are_listed_through_nvml() -> None:
    """Every device NVML reports is recorded with name, memory, UUID and driver."""
    nvml = FakeNvml()
    hw = capture_hardware(nvml=nvml)
    assert [(g.index, g.name, g.memory_total, g.uuid, g.driver) for g in hw.gpus] == [
        (0, "NVIDIA H100 #0", 80 * 2**30, "GPU-0", "550.54"),
        (1, "NVIDIA H100 #1", 80 * 2**30, "GPU-1", "550.54"),
    ]
    assert nvml.shut_down


# -- seeds ----------------------------------------------------------------------------------


def test_seed_everything_makes_random_and_numpy_repeat() -> None:
    """The same seed gives the same draws from `random` and numpy, and says what it seeded."""
    state = seed_everything(1234, environ={})
    first = (random.random(), np.random.rand(3).tolist())
    seed_everything(1234, environ={})
    assert (random.random(), np.random.rand(3).tolist()) == first
    assert state.seed == 1234
    assert state.libraries[:2] == ("random", "numpy")
    assert state.details["PYTHONHASHSEED"] == "random"


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "7", True])
def test_seed_everything_rejects_bad_seeds(seed: object) -> None:
    """Seeds outside numpy's range, or not integers, are refused with the value named."""
    with pytest.raises(InvalidInputError, match="seed must be an integer"):
        seed_everything(seed, environ={})  # type: ignore[arg-type]


def test_seed_everything_seeds_torch_when_imported() -> None:
    """Where torch is imported, it is seeded and deterministic mode is switched on."""
    torch = pytest.importorskip("torch")
    environ: dict[str, str] = {}
    try:
        state = seed_everything(7, deterministic=True, environ=environ)
        first = torch.rand(2).tolist()
        seed_everything(7, deterministic=True, environ=environ)
        assert torch.rand(2).tolist() == first
        assert "torch" in state.libraries and state.deterministic
        assert torch.are_deterministic_algorithms_enabled()
        assert environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(False)
