"""Frozen settings; `Settings.from_env` is the one reader of `POLYTRACK_*` variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
from attrs import field, frozen

from polytrack.errors import InvalidInputError

__all__ = [
    "CAPTURES",
    "CONSOLE_MODES",
    "DEFAULT_ENV_ALLOWLIST",
    "Distributed",
    "MODES",
    "Mode",
    "Settings",
    "config_path",
    "default_cache_dir",
    "login_name",
    "default_home",
]

Mode = Literal["online", "offline", "disabled"]
MODES: tuple[Mode, ...] = ("online", "offline", "disabled")
# What `init()` records without being asked; each can be switched off.
CAPTURES: tuple[str, ...] = ("git", "code", "environment", "hardware", "system", "logs")
# auto: capture file descriptors 1 and 2 (subprocesses too) in a plain script, else wrap
# sys.stdout and sys.stderr (notebooks, pytest, streams replaced by the user).
CONSOLE_MODES: tuple[str, ...] = ("auto", "wrap", "redirect")
# Environment variables recorded with a run (fnmatch patterns): those the frameworks read.
# Names that look like secrets are dropped whatever the pattern says, and values shaped
# like one are recorded as [REDACTED] (`capture.environment.selected_variables`).
DEFAULT_ENV_ALLOWLIST: tuple[str, ...] = (
    "CUDA_*",
    "CUBLAS_*",
    "CUDNN_*",
    "NVIDIA_*",
    "NCCL_*",
    "OMP_*",
    "MKL_*",
    "OPENBLAS_*",
    "TORCH_*",
    "PYTORCH_*",
    # TensorFlow's own (TF_VAR_* belongs to Terraform and carries its secrets).
    "TF_CPP_*",
    "TF_XLA_FLAGS",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "TF_GPU_ALLOCATOR",
    "TF_GPU_THREAD_MODE",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "TF_NUM_INTEROP_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "XLA_*",
    "JAX_*",
    "HF_*",
    "TRANSFORMERS_*",
    "PYTHONHASHSEED",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
    "SLURM_*",
    "POLYAXON_*",
    "POLYTRACK_*",
    "LANG",
    "LC_*",
    "TZ",
)


def default_home(environ: Mapping[str, str]) -> Path:
    """Where the embedded store lives when `POLYTRACK_HOME` is unset.

    Follows the XDG base-directory convention, like other per-user data stores:
    `$XDG_DATA_HOME/polytrack`, else `~/.local/share/polytrack`.
    """
    xdg = environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path(environ.get("HOME") or Path.home()) / ".local" / "share"
    return base / "polytrack"


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """Where caches live (package lists, file hashes): `$XDG_CACHE_HOME/polytrack`, else
    `~/.cache/polytrack`. Shared by every store of the user; deleting it loses nothing."""
    xdg = environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path(environ.get("HOME") or Path.home()) / ".cache"
    return base / "polytrack"


def config_path(environ: Mapping[str, str]) -> Path:
    """The config file (backend, artifact store, credentials: `polytrack.sync.backends.config`):
    `$POLYTRACK_CONFIG`, else `$XDG_CONFIG_HOME/polytrack/config.toml`."""
    if environ.get("POLYTRACK_CONFIG"):
        return Path(environ["POLYTRACK_CONFIG"]).expanduser()
    xdg = environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path(environ.get("HOME") or Path.home()) / ".config"
    return base / "polytrack" / "config.toml"


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise InvalidInputError(f"setting {attribute.name} must be positive, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0:
        raise InvalidInputError(f"setting {attribute.name} must not be negative, got {value!r}")


def _console(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in CONSOLE_MODES:
        raise InvalidInputError(f"console must be one of {', '.join(CONSOLE_MODES)}; got {value!r}")


# A run id names a directory under `runs/`: no separators, no dot-only names.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _run_id(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and _RUN_ID.fullmatch(value) is None:
        variable = f"POLYTRACK_{attribute.name.upper()}"
        raise InvalidInputError(
            f"{variable} must be 1 to 128 letters, digits, '.', '_' or '-', starting "
            f"with a letter or digit; got {value!r}"
        )


@frozen
class Distributed:
    """Where this process stands in a distributed job, as its launcher's environment says
    (`distributed_from_env`): present only for a job of more than one process.

    `job` is what every process of the job finds the same in its environment, and no
    other job does: `polytrack.ranks.shared_run_id` makes the run's id of it, so the
    ranks agree on one run without talking to each other. With `same_parent`, the
    environment names no job (`MASTER_ADDR`/`MASTER_PORT` only, which the next job on
    the machine reuses): the parent process that started the ranks completes it.
    """

    rank: int
    world_size: int
    local_rank: int | None = None
    source: str = "torch"  # which variables said it: torch, mpi or slurm
    job: str = ""
    same_parent: bool = False

    def __attrs_post_init__(self) -> None:
        if self.world_size < 2:
            raise InvalidInputError(
                f"a distributed job has 2 processes or more, not {self.world_size}"
            )
        if not 0 <= self.rank < self.world_size:
            raise InvalidInputError(
                f"rank {self.rank} is not within the world size {self.world_size} "
                f"(from the {self.source} variables)"
            )


# Who says which rank a process is, first match wins: (source, rank, size, local rank).
# torch: the `env://` convention of torch.distributed, which torchrun, accelerate,
# DeepSpeed's and Lightning's launchers set. mpi: Open MPI's `mpirun`. slurm: tasks that
# `srun` starts (SLURM_STEP_ID set: a batch script alone has SLURM_NTASKS too).
RANK_VARIABLES: tuple[tuple[str, str, str, str], ...] = (
    ("torch", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
    ("mpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
)


def distributed_from_env(environ: Mapping[str, str]) -> Distributed | None:
    """This process's rank in a distributed job of more than one process, from the
    variables of `RANK_VARIABLES`; None outside one (or in a job of one process).

    The job is named, first match wins, by `TORCHELASTIC_RUN_ID` with `MASTER_ADDR` and
    `MASTER_PORT` (torchrun: its `--rdzv-id`, a random one with `--standalone`; the
    port tells apart jobs that reuse an id), `SLURM_JOB_ID` with `SLURM_STEP_ID`,
    `PMIX_NAMESPACE` (Open MPI's job), else `MASTER_ADDR`, `MASTER_PORT` and the world
    size, completed by the parent process (`Distributed.same_parent`): ranks on one
    machine, started by one process (`torch.multiprocessing.spawn`, a shell script).

    Raises:
        InvalidInputError: a rank or size that is not a whole number, or a rank not
            below the size (names the variable).
    """
    for source, rank_name, size_name, local_name in RANK_VARIABLES:
        if not environ.get(rank_name) or not environ.get(size_name):
            continue
        if source == "slurm" and not environ.get("SLURM_STEP_ID"):
            continue
        rank = _whole(environ, rank_name)
        size = _whole(environ, size_name)
        local = _whole(environ, local_name) if environ.get(local_name) else None
        if size <= 1:
            return None
        addr, port = environ.get("MASTER_ADDR", ""), environ.get("MASTER_PORT", "")
        same_parent = False
        elastic = environ.get("TORCHELASTIC_RUN_ID", "")
        # "none" is torchrun's default `--rdzv-id` (static rendezvous, `--master-port`
        # given): every such job has it, so it names none.
        if elastic and elastic != "none":
            job = f"torchelastic:{elastic}:{addr}:{port}"
        elif environ.get("SLURM_JOB_ID"):
            job = f"slurm:{environ['SLURM_JOB_ID']}.{environ.get('SLURM_STEP_ID', '')}"
        elif environ.get("PMIX_NAMESPACE"):
            job = f"pmix:{environ['PMIX_NAMESPACE']}"
        else:
            job, same_parent = f"local:{addr}:{port}:{size}", True
        return Distributed(
            rank=rank,
            world_size=size,
            local_rank=local,
            source=source,
            job=job,
            same_parent=same_parent,
        )
    return None


def _whole(environ: Mapping[str, str], name: str) -> int:
    raw = environ[name]
    try:
        return int(raw)
    except ValueError:
        raise InvalidInputError(f"{name} must be a whole number, got {raw!r}") from None


def _mode(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}; got {value!r}")


def login_name(environ: Mapping[str, str]) -> str | None:
    """The user's login name as `getpass.getuser()` finds it (LOGNAME, USER, LNAME,
    USERNAME, then the password database), without importing getpass (termios, ~1 ms of
    `init()`); None where nothing names the user (a container's uid with no account)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if environ.get(name):
            return environ[name]
    try:
        import pwd  # POSIX only; a built-in module, cheap to import

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        return None


@frozen
class Settings:
    """Everything configurable about tracking, resolved once per `init()`.

    Environment variables (all optional):
    `POLYTRACK_HOME`, `POLYTRACK_MODE`, `POLYTRACK_PROJECT`, `POLYTRACK_FSYNC_INTERVAL`,
    `POLYTRACK_HEARTBEAT_INTERVAL`, `POLYTRACK_INDEX_ON_FINISH` (0/1), `POLYTRACK_SPEEDUPS`
    (0: the pure-Python hot path even where the C one is built), `POLYTRACK_CACHE_DIR`,
    `POLYTRACK_CAPTURE_GIT`, `_CODE`, `_ENVIRONMENT`, `_HARDWARE`, `_SYSTEM`, `_LOGS` (0/1),
    `POLYTRACK_CAPTURE_BUDGET`, `POLYTRACK_SYSTEM_INTERVAL` (seconds),
    `POLYTRACK_MAX_DIFF_BYTES`, `POLYTRACK_LOGS_MAX_BYTES`, `POLYTRACK_MEDIA_MAX_SIDE`,
    `POLYTRACK_MEDIA_QUEUE_BYTES`, `POLYTRACK_CONSOLE`
    (auto/wrap/redirect), `POLYTRACK_ENV_ALLOWLIST` (comma-separated patterns; the word
    `default` stands for the built-in list), and `POLYTRACK_RUN_ID` / `POLYTRACK_RUN_NAME`
    (the run `init()` attaches to, and its default name: set by `polytrack run` in the
    containers it launches), `POLYTRACK_REPRODUCES` (the id of a run the new one
    reproduces: set by `polytrack reproduce --run`), `POLYTRACK_BACKEND` (where runs are
    synced, a URI), `POLYTRACK_ARTIFACT_STORE` (an fsspec URL), `POLYTRACK_SYNC_TIMEOUT`,
    `POLYTRACK_SYNC_INTERVAL` (seconds), `POLYTRACK_SYNC_HANDOFF` (0/1) and
    `POLYTRACK_USER` (who runs it; default the login name), `POLYTRACK_LOG_ALL_RANKS`
    (0/1: in a distributed job, record every rank's metrics, not rank 0's only). Also
    read, not ours: the rank variables of a distributed job (`distributed_from_env`).
    The config file
    (`polytrack.sync.backends.config`) is read by `init()`, not here.
    """

    home: Path
    mode: str = field(default="online", validator=_mode)
    project: str = "default"
    fsync_interval: float = field(default=1.0, validator=_positive)
    heartbeat_interval: float = field(default=5.0, validator=_positive)
    # Off: readers index a run lazily (every read refreshes the index first), and finish()
    # stays quick: indexing imports sqlite3 and reads the run back, ~20-35 ms (issue 21).
    index_on_finish: bool = False
    # Use the C hot path (polytrack._speedups) where it was built.
    speedups: bool = True
    # First segment of a stream is small so that tiny runs stay tiny on disk; each next
    # one doubles up to the maximum.
    first_segment_bytes: int = 64 * 1024
    max_segment_bytes: int = 8 * 1024 * 1024
    cache_dir: Path | None = None  # None: default_cache_dir(environ)
    capture_git: bool = True
    capture_code: bool = True
    capture_environment: bool = True
    capture_hardware: bool = True
    capture_system: bool = True
    capture_logs: bool = True
    # How long `init()` waits for the snapshot; what is not done by then is recorded by
    # a background thread (and marked partial until it is).
    capture_budget: float = field(default=0.05, validator=_non_negative)
    git_timeout: float = field(default=10.0, validator=_positive)
    max_diff_bytes: int = field(default=10 * 1024 * 1024, validator=_non_negative)
    max_untracked: int = field(default=100, validator=_non_negative)
    system_interval: float = field(default=10.0, validator=_positive)
    logs_max_bytes: int = field(default=10 * 1024 * 1024, validator=_non_negative)
    # Images wider or taller than this are scaled down (aspect kept) before they are
    # encoded; 0 keeps every image at its size (`polytrack.media`).
    media_max_side: int = field(default=2048, validator=_non_negative)
    # Media waiting to be encoded, in bytes of copied arrays: a log call that would go
    # past it waits for the encoder (memory stays bounded whatever the loop logs).
    media_queue_bytes: int = field(default=512 * 1024 * 1024, validator=_positive)
    console: str = field(default="auto", validator=_console)
    env_allowlist: tuple[str, ...] = DEFAULT_ENV_ALLOWLIST
    # The run `init()` records into, created under this id if absent, else continued as a
    # new attempt: how a job launched by `polytrack run` joins the run made at submission.
    run_id: str | None = field(default=None, validator=_run_id)
    run_name: str | None = None  # the default name of `init()`
    # Where runs are synced (a URI: mlflow+http://host:5000, polyaxon+http://host/o/p);
    # None: the config file's `backend`, else nowhere (local store only).
    backend: str | None = None
    artifact_store: str | None = None  # an fsspec URL for artifacts instead of the server's
    # How long `finish()` waits for the sync backlog before leaving it to the home's
    # background uploader; no wait at all for a server it cannot connect to (issue 13).
    sync_timeout: float = field(default=5.0, validator=_non_negative)
    sync_interval: float = field(default=2.0, validator=_positive)
    # After sync_timeout, start the home's background uploader for the rest.
    sync_handoff: bool = True
    # The run this one reproduces (set by `polytrack reproduce --run`): `init()` links
    # the new run to it.
    reproduces: str | None = field(default=None, validator=_run_id)
    # Who runs it: POLYTRACK_USER, else the login name (see `login_name`).
    user: str | None = None
    # A rank of a distributed job (RANK, WORLD_SIZE, ...: `distributed_from_env`): every
    # rank records into one run, rank 0 its metrics (docs/distributed.md).
    distributed: Distributed | None = None
    # Record the metrics of every rank, not rank 0's only, labelled `rank<N>/<key>`.
    log_all_ranks: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `POLYTRACK_*` from `environ` (default: `os.environ`)."""
        env = os.environ if environ is None else environ
        home = env.get("POLYTRACK_HOME")
        kwargs: dict[str, object] = {
            "home": Path(home).expanduser() if home else default_home(env),
        }
        if "POLYTRACK_MODE" in env:
            kwargs["mode"] = env["POLYTRACK_MODE"]
        if env.get("POLYTRACK_PROJECT"):
            kwargs["project"] = env["POLYTRACK_PROJECT"]
        if env.get("POLYTRACK_CACHE_DIR"):
            kwargs["cache_dir"] = Path(env["POLYTRACK_CACHE_DIR"]).expanduser()
        else:
            kwargs["cache_dir"] = default_cache_dir(env)
        if "POLYTRACK_CONSOLE" in env:
            kwargs["console"] = env["POLYTRACK_CONSOLE"]
        if env.get("POLYTRACK_RUN_ID"):
            kwargs["run_id"] = env["POLYTRACK_RUN_ID"]
        if env.get("POLYTRACK_RUN_NAME"):
            kwargs["run_name"] = env["POLYTRACK_RUN_NAME"]
        if env.get("POLYTRACK_REPRODUCES"):
            kwargs["reproduces"] = env["POLYTRACK_REPRODUCES"]
        kwargs["user"] = env.get("POLYTRACK_USER") or login_name(env)
        kwargs["distributed"] = distributed_from_env(env)
        for name in ("backend", "artifact_store"):
            if env.get(f"POLYTRACK_{name.upper()}"):
                kwargs[name] = env[f"POLYTRACK_{name.upper()}"]
        if env.get("POLYTRACK_ENV_ALLOWLIST") is not None:
            kwargs["env_allowlist"] = _patterns(env["POLYTRACK_ENV_ALLOWLIST"])
        for name in ("max_diff_bytes", "logs_max_bytes", "media_max_side", "media_queue_bytes"):
            raw = env.get(f"POLYTRACK_{name.upper()}")
            if raw is not None:
                try:
                    kwargs[name] = int(raw)
                except ValueError:
                    raise InvalidInputError(
                        f"POLYTRACK_{name.upper()} must be a whole number, got {raw!r}"
                    ) from None
        for name in (
            "fsync_interval",
            "heartbeat_interval",
            "capture_budget",
            "system_interval",
            "sync_timeout",
            "sync_interval",
        ):
            raw = env.get(f"POLYTRACK_{name.upper()}")
            if raw is not None:
                try:
                    kwargs[name] = float(raw)
                except ValueError:
                    raise InvalidInputError(
                        f"POLYTRACK_{name.upper()} must be a number of seconds, got {raw!r}"
                    ) from None
        flags = ["index_on_finish", "speedups", "sync_handoff", "log_all_ranks"]
        flags += [f"capture_{what}" for what in CAPTURES]
        for name in flags:
            raw = env.get(f"POLYTRACK_{name.upper()}")
            if raw is not None:
                kwargs[name] = raw.strip().lower() not in ("0", "false", "no", "off")
        return cls(**kwargs)  # type: ignore[arg-type]

    def captures(self, what: str) -> bool:
        """Whether the capture `what` (one of CAPTURES) is switched on."""
        return bool(getattr(self, f"capture_{what}"))

    def evolve(self, **changes: Any) -> Settings:
        """A copy with `changes` applied (validated again)."""
        return attrs.evolve(self, **changes)


def __getattr__(name: str) -> Any:
    # Polyaxon's `settings.CLIENT_CONFIG`, read when asked (PEP 562): importing this
    # module reads no environment, and `init()` never builds the class.
    if name == "CLIENT_CONFIG":
        from polytrack._client_config import ClientConfig

        return ClientConfig.from_env()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _patterns(raw: str) -> tuple[str, ...]:
    patterns: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        if item == "default":
            patterns.extend(DEFAULT_ENV_ALLOWLIST)
        elif item:
            patterns.append(item)
    return tuple(patterns)
