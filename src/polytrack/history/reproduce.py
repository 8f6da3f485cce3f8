"""Reproducing a recorded run: its code checked out, its data and software compared with
what is here now, and, if asked, the run started again and its metrics compared.

    run = polytrack.get_run("a1b2")
    done = checkout(run, Path("repro"))             # the commit, with the stored diff applied
    write_params(run, done.dest)                    # repro/polytrack-params.json
    check_data(run)                                 # match / changed / missing, per file
    environment_drift(run)                          # packages and Python that differ now
    result = rerun(run, done.dest)                  # a new run, linked to the original
    result.comparison.summary()                     # `identical_metrics`: bit for bit

What can and cannot be brought back:

- the code: the run's commit, from its repository where that still exists (a `git
  worktree`), else cloned from the recorded remote; then the uncommitted diff the run
  stored (`git diff HEAD --binary`, so binary changes too). Untracked files were recorded
  by name only: they are listed as not reproducible. A diff that was cut at
  `max_diff_bytes` brings back only the files that fit, and says so;
- the command: the recorded entrypoint (a script, or `-m module`) with the recorded argv,
  run in the same directory relative to the repository. Arguments redacted as secrets
  (`[REDACTED]`) cannot be replayed: `rerun` refuses unless their values are given
  (`secrets=`, on the command line `--secret-env VAR`), filled in order;
- the seeds: the script seeds itself again (its argv is the same); what only the
  environment can set is restored from the record: `PYTHONHASHSEED`,
  `CUBLAS_WORKSPACE_CONFIG`, and thread counts (`OMP_*`, `MKL_*`, `OPENBLAS_*`) that
  change the order of floating-point reductions;
- the data and the software are not brought back: `check_data` and `environment_drift`
  say how they differ now.
"""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from attrs import field, frozen

from polytrack._api import new_run_id
from polytrack.capture.data import HashCache, hash_source
from polytrack.capture.environment import installed_packages
from polytrack.capture.git import git_environment
from polytrack.capture.notebook import Cell, read_cells, read_notebook
from polytrack.errors import InvalidInputError, ReproduceError
from polytrack.history.compare import MetricsCheck, identical_metrics
from polytrack.history.runs import RunView, get_run
from polytrack.models import DataRef, EnvironmentState, GitState
from polytrack.redact import REDACTED
from polytrack.settings import Settings

__all__ = [
    "DATA_STATUSES",
    "PARAMS_FILE",
    "Checkout",
    "DataCheck",
    "DataFileChange",
    "EnvironmentDrift",
    "Replay",
    "ReproduceError",
    "Rerun",
    "check_data",
    "checkout",
    "environment_drift",
    "export_code",
    "plan_rerun",
    "rerun",
    "write_params",
]

# Where `write_params` puts the run's params, at the root of the checkout.
PARAMS_FILE: Final = "polytrack-params.json"
DATA_STATUSES: Final = ("match", "changed", "missing", "unchecked")

# Variables that change results but that a script cannot set for itself once running
# (hash randomisation is fixed at interpreter start; BLAS reads thread counts at load).
_DETERMINISM_VARIABLES: Final = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "OMP_*",
    "MKL_*",
    "OPENBLAS_*",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
)
# Set for the rerun by us; the caller's own values would send the new run elsewhere.
_RERUN_OWN_VARIABLES: Final = ("POLYTRACK_RUN_ID", "POLYTRACK_RUN_NAME", "POLYTRACK_REPRODUCES")


# -- the code -------------------------------------------------------------------------------


@frozen
class Checkout:
    """The working tree `checkout` made: the run's commit with its diff applied."""

    dest: Path
    commit: str
    source: str  # "worktree" (of the run's repository) or "clone" (of its remote)
    origin: str  # the repository's path, or the remote's URL
    branch: str | None = None  # the branch the run was on, for the record
    diff_file: str | None = None  # the run's stored diff, applied; None for a clean tree
    diff_bytes: int = 0
    diff_truncated: bool = False  # only the files that fit the limit were restored
    untracked: tuple[str, ...] = ()  # recorded by name only: not reproducible
    untracked_truncated: bool = False
    notes: tuple[str, ...] = ()


def checkout(
    run: RunView,
    dest: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    git: str = "git",
) -> Checkout:
    """Check out the run's commit into `dest` and apply the diff the run stored.

    Where the run's repository still is (and still has the commit), `dest` becomes a
    detached `git worktree` of it (remove it with `git worktree remove DEST`); else the
    recorded remote is cloned into `dest`.

    Args:
        run: the run, from `polytrack.get_run`.
        dest: a new or empty directory.
        environ: the environment git runs in; default `os.environ`.
        git: the git executable.

    Raises:
        ReproduceError: the run has no git state (recorded outside a repository, or with
            the git capture off), `dest` is not empty, git is missing, the commit cannot
            be reached, or the diff does not apply (the checkout is then left in `dest`).

    Example:
        >>> checkout(polytrack.get_run("a1b2"), "repro").commit
        '3f2a...'
    """
    state = git_state_of(run)
    assert state.commit is not None
    target = Path(dest).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ReproduceError(f"{target} exists and is not empty: choose another directory")
    env = git_environment(os.environ if environ is None else environ)
    executable = shutil.which(git, path=env.get("PATH", os.defpath))
    if executable is None:
        raise ReproduceError(f"{git} not found: git is needed to check out the run's commit")
    target.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    root = Path(state.root) if state.root else None
    if root is not None and _has_commit(executable, root, state.commit, env):
        _git(
            executable,
            ["worktree", "add", "--detach", "--quiet", str(target), state.commit],
            cwd=root,
            env=env,
            what=f"git worktree add of {root}",
        )
        source, origin = "worktree", str(root)
    elif state.remote is not None:
        if REDACTED in state.remote:
            raise ReproduceError(
                f"the run's repository ({root}) is gone or lacks {state.commit}, and its "
                f"remote was recorded without its credentials ({state.remote}): clone it "
                "yourself and check out that commit"
            )
        if root is not None:
            notes.append(f"{root} is gone or lacks the commit: cloned the remote instead")
        _git(
            executable,
            ["clone", "--no-checkout", "--quiet", "--", state.remote, str(target)],
            cwd=target.parent,
            env=env,
            what=f"git clone of {state.remote}",
        )
        _git(
            executable,
            ["-c", "advice.detachedHead=false", "checkout", "--detach", "--quiet", state.commit],
            cwd=target,
            env=env,
            what=f"git checkout of {state.commit}",
        )
        source, origin = "clone", state.remote
    else:
        raise ReproduceError(
            f"the run's repository ({root}) is gone or lacks commit {state.commit}, and the "
            "run recorded no remote to clone it from"
        )
    if state.partial:
        notes.append(
            "git status and diff were not captured in time: changes the tree held "
            "beyond the commit are unknown"
        )
    elif state.dirty and state.diff_file is None:
        notes.append("the tree had uncommitted changes but no diff was stored")
    if state.diff_file is not None:
        patch = Path(run.path) / state.diff_file
        if not patch.is_file():
            raise ReproduceError(
                f"the run's diff {patch} is gone: the checkout in {target} lacks its "
                "uncommitted changes"
            )
        _git(
            executable,
            ["apply", "--whitespace=nowarn", str(patch)],
            cwd=target,
            env=env,
            what=f"git apply of the run's diff (the checkout is left in {target})",
        )
        if state.diff_truncated:
            notes.append(
                f"the diff was cut at the recording limit ({state.diff_bytes} bytes in all): "
                "only the files that fit were restored"
            )
    return Checkout(
        dest=target,
        commit=state.commit,
        source=source,
        origin=origin,
        branch=state.branch,
        diff_file=state.diff_file,
        diff_bytes=state.diff_bytes,
        diff_truncated=state.diff_truncated,
        untracked=state.untracked,
        untracked_truncated=state.untracked_truncated,
        notes=tuple(notes),
    )


def git_state_of(run: RunView) -> GitState:
    """The run's git record, or why there is nothing to check out."""
    state = run.snapshot().git
    if state is None:
        raise ReproduceError(
            f"run {run.id} recorded no git state (the git capture was off): there is no "
            "commit to check out"
        )
    if not state.available:
        raise ReproduceError(
            f"run {run.id} was not recorded in a git repository ({state.reason}): there "
            "is no commit to check out"
        )
    if state.commit is None:
        raise ReproduceError(f"run {run.id} started before its repository's first commit")
    return state


def _has_commit(executable: str, root: Path, commit: str, env: Mapping[str, str]) -> bool:
    if not root.is_dir():
        return False
    done = subprocess.run(
        [executable, "cat-file", "-e", f"{commit}^{{commit}}"],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def _git(
    executable: str, args: Sequence[str], *, cwd: Path, env: Mapping[str, str], what: str
) -> None:
    try:
        done = subprocess.run(
            [executable, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise ReproduceError(f"{what} could not start: {exc}") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = (
            "; ".join(line.removeprefix("fatal: ").removeprefix("error: ") for line in message[:3])
            or f"exit status {done.returncode}"
        )
        raise ReproduceError(f"{what} failed: {detail}")


def write_params(run: RunView, dest: str | os.PathLike[str]) -> Path:
    """Write the run's params as JSON to `dest/polytrack-params.json` and return its path.

    The params as recorded: one flat mapping, nested names joined with dots
    (`{"optimizer.lr": 0.01}`). A script that takes its config from a file can be pointed
    at it; the replayed argv does not name it.

    Raises:
        ReproduceError: the checkout holds a file of that name already (the repository
            tracks one): writing it would change the code being reproduced.

    Example:
        >>> write_params(polytrack.get_run("a1b2"), "repro")
        PosixPath('repro/polytrack-params.json')
    """
    path = Path(dest) / PARAMS_FILE
    if path.exists():
        raise ReproduceError(f"{path} exists (the repository has one): not overwritten")
    text = json.dumps(run.params, indent=2, sort_keys=True, allow_nan=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


# -- the data -------------------------------------------------------------------------------


@frozen
class DataFileChange:
    """One file of a directory data ref that differs now: "changed", "missing", "added"."""

    path: str  # relative to the directory, "/"-separated
    status: str


@frozen
class DataCheck:
    """A data ref of the run against what its path holds now.

    `status` is "match", "changed", "missing" (nothing at the path) or "unchecked" (an
    array or frame held in memory, or a path that cannot be read: `reason` says).
    """

    ref: DataRef
    status: str = field()
    digest: str | None = None  # what the path hashes to now
    reason: str | None = None
    files: tuple[DataFileChange, ...] = ()  # for a changed directory, file by file

    @status.validator
    def _known(self, attribute: Any, value: str) -> None:
        if value not in DATA_STATUSES:
            raise ValueError(f"status must be one of {DATA_STATUSES}, got {value!r}")


def check_data(run: RunView, *, cache_dir: Path | None = None) -> tuple[DataCheck, ...]:
    """Hash the path of every data ref of the run again and say which still match.

    Each ref is hashed as `log_data_ref` hashed it (through the same cache, so an
    unchanged file costs a `stat`). A directory that changed is compared file by file with
    the manifest the run stored. A name logged more than once counts in its last version.

    Args:
        run: the run.
        cache_dir: the hash cache's directory; default `POLYTRACK_CACHE_DIR` or its default.

    Example:
        >>> [(c.ref.name, c.status) for c in check_data(polytrack.get_run("a1b2"))]
        [('train', 'match'), ('labels', 'changed')]
    """
    latest: dict[tuple[str, str], DataRef] = {}
    for ref in run.snapshot().data_refs:
        latest.pop((ref.name, ref.role), None)  # keep the order of the last logging
        latest[ref.name, ref.role] = ref
    if not latest:
        return ()
    if cache_dir is None:
        cache_dir = Settings.from_env().cache_dir
    cache = HashCache.open(cache_dir / "hashes.sqlite") if cache_dir is not None else None
    try:
        return tuple(_check_ref(run, ref, cache) for ref in latest.values())
    finally:
        if cache is not None:
            cache.close()


def _check_ref(run: RunView, ref: DataRef, cache: HashCache | None) -> DataCheck:
    if ref.kind not in ("file", "directory") or ref.path is None:
        return DataCheck(ref, "unchecked", reason="held in memory: no path to check")
    if not os.path.lexists(ref.path):
        return DataCheck(ref, "missing", reason="nothing at the path now")
    try:
        found = hash_source(ref.path, cache=cache)
    except InvalidInputError as exc:
        return DataCheck(ref, "unchecked", reason=str(exc))
    if found.kind != ref.kind:
        return DataCheck(
            ref, "changed", digest=found.digest, reason=f"was a {ref.kind}, is a {found.kind}"
        )
    if found.digest == ref.digest:
        return DataCheck(ref, "match", digest=found.digest)
    if ref.kind == "file":
        return DataCheck(ref, "changed", digest=found.digest)
    recorded = _read_manifest(Path(run.path), ref.manifest_file)
    if recorded is None:
        return DataCheck(
            ref,
            "changed",
            digest=found.digest,
            reason="the run's manifest is gone: only the directory's digest was compared",
        )
    now = found.manifest or {}
    changes = [
        DataFileChange(rel, "missing" if rel not in now else "changed")
        for rel, digest in recorded.items()
        if rel not in now or now[rel][0] != digest
    ]
    changes += [DataFileChange(rel, "added") for rel in now if rel not in recorded]
    changes.sort(key=lambda change: change.path)
    return DataCheck(ref, "changed", digest=found.digest, files=tuple(changes))


def _read_manifest(directory: Path, name: str | None) -> dict[str, str] | None:
    """relative path -> digest from a manifest the run stored, or None if unreadable."""
    if name is None:
        return None
    try:
        body = json.loads((directory / name).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict):
        return None
    return {str(rel): str(entry[0]) for rel, entry in body.items() if isinstance(entry, list)}


# -- the software ---------------------------------------------------------------------------


@frozen
class EnvironmentDrift:
    """How the software here differs from the run's.

    `python` is (the run's, this one's) when they differ; `added` are distributions
    installed here that the run did not have, `removed` those it had that are not here,
    `changed` name -> (the run's version, this one's). `recorded` is False when the run
    has no environment record: nothing could be compared.
    """

    recorded: bool
    python: tuple[str, str] | None = None
    added: dict[str, str] = field(factory=dict)
    removed: dict[str, str] = field(factory=dict)
    changed: dict[str, tuple[str, str]] = field(factory=dict)

    @property
    def drifted(self) -> bool:
        """Whether anything differs."""
        return bool(self.python or self.added or self.removed or self.changed)


def environment_drift(
    run: RunView,
    *,
    current: EnvironmentState | None = None,
    path: Sequence[str] | None = None,
    cache_dir: Path | None = None,
) -> EnvironmentDrift:
    """Compare the run's Python and installed distributions with this interpreter's.

    The distributions are listed here as the run listed its own (the `*.dist-info` and
    `*.egg-info` directories on `sys.path`, `polytrack.capture.environment`).

    Args:
        run: the run.
        current: the environment to compare with; default this interpreter's.
        path: where to look for distributions when `current` is None; default `sys.path`.
        cache_dir: the package-list cache; default `POLYTRACK_CACHE_DIR` or its default.

    Example:
        >>> environment_drift(polytrack.get_run("a1b2")).changed
        {'numpy': ('1.26.4', '2.0.1')}
    """
    recorded = run.snapshot().environment
    if recorded is None:
        return EnvironmentDrift(recorded=False)
    if current is None:
        python = platform.python_version()
        implementation = sys.implementation.name
        if cache_dir is None:
            cache_dir = Settings.from_env().cache_dir
        packages = installed_packages(sys.path if path is None else path, cache_dir=cache_dir)
    else:
        python, implementation = current.python, current.implementation
        packages = current.packages
    before = f"{recorded.python} ({recorded.implementation})"
    now = f"{python} ({implementation})"
    old = recorded.packages
    return EnvironmentDrift(
        recorded=True,
        python=(before, now) if before != now else None,
        added={name: packages[name] for name in sorted(packages) if name not in old},
        removed={name: old[name] for name in sorted(old) if name not in packages},
        changed={
            name: (old[name], packages[name])
            for name in sorted(old)
            if name in packages and packages[name] != old[name]
        },
    )


# -- running it again -----------------------------------------------------------------------


@frozen
class Replay:
    """How `rerun` starts the run again: the command, where, and the variables it sets on
    top of the caller's environment (the new run's id among them)."""

    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str]
    run_id: str
    notes: tuple[str, ...] = ()


@frozen
class Rerun:
    """What `rerun` did: how it started the run, how the process ended, and the
    comparison of the metrics, every point bit for bit (`identical_metrics` with the
    original as `a`, `system/*` left out: they measure the machine, not the result);
    None when the new run recorded nothing."""

    replay: Replay
    returncode: int
    comparison: MetricsCheck | None


def plan_rerun(
    run: RunView,
    dest: str | os.PathLike[str],
    *,
    secrets: Sequence[str] = (),
    python: str | None = None,
) -> Replay:
    """The command that runs `run` again in the checkout `dest`, without running it.

    Args:
        run: the run.
        dest: the checkout `checkout` made.
        secrets: values for the argv's redacted arguments, in order.
        python: the interpreter; default this one (`sys.executable`), whose packages
            `environment_drift` compared.

    Raises:
        ReproduceError: the run recorded no code state, ran in a notebook or REPL, ran a
            script outside its repository, or has redacted arguments that `secrets`
            does not fill (or fills with too many values); or it has no git state.

    Example:
        >>> plan_rerun(polytrack.get_run("a1b2"), "repro").argv
        ('/usr/bin/python3', '/home/me/repro/train.py', '--lr', '0.1')
    """
    state = git_state_of(run)
    assert state.root is not None
    code = run.snapshot().code
    if code is None:
        raise ReproduceError(
            f"run {run.id} recorded no code state (the code capture was off): its command "
            "is unknown"
        )
    if code.notebook is not None:
        raise ReproduceError(f"run {run.id} ran in a notebook ({code.notebook}): run it there")
    if code.entrypoint is None:
        raise ReproduceError(
            f"run {run.id} ran in an interactive interpreter or `python -c`: there is no "
            "script to run again"
        )
    target = Path(dest).absolute()
    notes = []
    inside = path_within(code.cwd, state.root)
    args = _fill_secrets(code.argv[1:], secrets)
    interpreter = python or sys.executable
    if code.entrypoint.startswith("-m "):
        cwd = target / require_within(code.cwd, state.root, "its working directory (for -m)")
        command = (interpreter, "-m", code.entrypoint.removeprefix("-m "), *args)
    else:
        script = target / require_within(code.entrypoint, state.root, "its script")
        command = (interpreter, str(script), *args)
        if inside is None:
            # `python project/train.py` from above the repository: relative paths in the
            # argv point from there, so the rerun starts there too.
            cwd = Path(code.cwd)
            notes.append(f"the run started outside its repository, in {cwd}: so does this")
        else:
            cwd = target / inside
    new_id = new_run_id()
    env = {
        "POLYTRACK_RUN_ID": new_id,
        "POLYTRACK_REPRODUCES": run.id,
        "POLYTRACK_PROJECT": run.project,
    }
    env.update(determinism_variables(run))
    if env.get("PYTHONHASHSEED") is None:
        notes.append("PYTHONHASHSEED was not set for the run: str hashes (set order) differ")
    return Replay(argv=command, cwd=cwd, env=env, run_id=new_id, notes=tuple(notes))


def path_within(path: str, root: str) -> Path | None:
    """`path` relative to the repository root; None outside it."""
    for base, candidate in ((root, path), (os.path.realpath(root), os.path.realpath(path))):
        relative = os.path.relpath(candidate, base)
        if relative != ".." and not relative.startswith(".." + os.sep):
            return Path(relative)
    return None


def require_within(path: str, root: str, what: str) -> Path:
    """`path` relative to the repository root, or why the run cannot be replayed."""
    relative = path_within(path, root)
    if relative is not None:
        return relative
    raise ReproduceError(
        f"{what} {path} is outside the run's repository {root}: the checkout does not hold it"
    )


def _fill_secrets(args: Sequence[str], secrets: Sequence[str]) -> tuple[str, ...]:
    redacted = [arg for arg in args if REDACTED in arg]
    slots = sum(arg.count(REDACTED) for arg in redacted)
    if slots != len(secrets):
        if not secrets:
            raise ReproduceError(
                f"the recorded arguments hold {slots} redacted value(s) ({' '.join(redacted)}): "
                "give each, in order, with --secret-env VARIABLE (secrets= in Python)"
            )
        raise ReproduceError(
            f"the recorded arguments hold {slots} redacted value(s), {len(secrets)} given"
        )
    values = iter(secrets)
    filled = []
    for arg in args:
        while REDACTED in arg:
            arg = arg.replace(REDACTED, next(values), 1)
        filled.append(arg)
    return tuple(filled)


def determinism_variables(run: RunView) -> dict[str, str]:
    """The recorded variables that a script cannot set for itself once it runs."""
    snapshot = run.snapshot()
    chosen: dict[str, str] = {}
    if snapshot.environment is not None:
        for name, value in snapshot.environment.variables.items():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in _DETERMINISM_VARIABLES):
                chosen[name] = value
    if snapshot.seeds is not None:
        for name in ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG"):
            seeded = snapshot.seeds.details.get(name)
            if seeded is not None and seeded != "random":
                chosen[name] = seeded
    return chosen


def rerun(
    run: RunView,
    dest: str | os.PathLike[str],
    *,
    home: str | os.PathLike[str] | None = None,
    secrets: Sequence[str] = (),
    python: str | None = None,
    environ: Mapping[str, str] | None = None,
    output: Callable[[str], None] | None = None,
) -> Rerun:
    """Run the recorded command again in the checkout `dest`, as a new run that
    reproduces `run`, and compare the two runs' metrics.

    The new run goes into the same store under a new id, in the original's project, and
    records a `RunLinked(relation="reproduces")` to it (through `POLYTRACK_REPRODUCES`,
    read by `polytrack.init`). See `plan_rerun` for the command.

    Args:
        run: the run.
        dest: the checkout `checkout` made.
        home: the store; default `POLYTRACK_HOME` or its default.
        secrets: values for the argv's redacted arguments, in order.
        python: the interpreter; default this one.
        environ: the environment the command starts from; default `os.environ`.
        output: called with each line the command prints (stdout and stderr merged);
            None lets it write to this process' own.

    Raises:
        ReproduceError: see `plan_rerun`; or the command could not be started.

    Example:
        >>> rerun(polytrack.get_run("a1b2"), "repro").comparison.identical
        True
    """
    environ = os.environ if environ is None else environ
    store = Path(home).expanduser() if home is not None else Settings.from_env(environ).home
    replay = plan_rerun(run, dest, secrets=secrets, python=python)
    if not replay.cwd.is_dir():
        raise ReproduceError(
            f"the run's working directory {replay.cwd} is not in the checkout (it was not "
            "tracked by git)"
        )
    env = {k: v for k, v in environ.items() if k not in _RERUN_OWN_VARIABLES}
    env.update(replay.env, POLYTRACK_HOME=str(store))
    returncode = _run(replay, env, output)
    if not (store / "runs" / replay.run_id).is_dir():
        return Rerun(replay, returncode, None)
    reproduction = get_run(replay.run_id, home=store)
    return Rerun(replay, returncode, identical_metrics(run, reproduction))


def _run(replay: Replay, env: Mapping[str, str], output: Callable[[str], None] | None) -> int:
    pipe = subprocess.PIPE if output is not None else None
    try:
        process = subprocess.Popen(
            replay.argv,
            cwd=replay.cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=pipe,
            stderr=subprocess.STDOUT if output is not None else None,
        )
    except OSError as exc:
        raise ReproduceError(f"cannot start {replay.argv[0]}: {exc}") from exc
    try:
        if output is not None:
            assert process.stdout is not None
            for line in iter(process.stdout.readline, b""):
                output(line.decode("utf-8", "replace").rstrip("\n"))
        return process.wait()
    finally:
        if process.poll() is None:  # interrupted while reading: do not leave it running
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()



EXPORTS: Final = ("script", "notebook")


def export_code(run: RunView, fmt: str = "script") -> str:
    """The code a notebook run ran, cell by cell in the order the kernel ran them, as a
    Python script (cells marked `# %%`, which VS Code, Spyder and jupytext read as
    cells; IPython magics and shell escapes commented out) or as a notebook (`.ipynb`
    JSON, nbformat 4). Where the kernel's cells were not kept, the `.ipynb` kept with
    the run is used.

    Args:
        run: the run.
        fmt: "script" or "notebook".

    Raises:
        InvalidInputError: `fmt` is neither.
        ReproduceError: the run kept no notebook code (it ran as a script, or its code
            capture was off).

    Example:
        >>> print(export_code(polytrack.get_run("a1b2"), "script"))
    """
    if fmt not in EXPORTS:
        raise InvalidInputError(f"fmt must be one of {', '.join(EXPORTS)}; got {fmt!r}")
    directory = Path(run.path)
    cells = read_cells(directory)
    kept = read_notebook(directory)
    if not cells and kept is not None:
        if fmt == "notebook":
            return kept
        cells = _cells_of(kept)
    if not cells:
        raise ReproduceError(
            f"run {run.id} kept no notebook code: it ran as a script (see `polytrack "
            "reproduce` without --export), or its code capture was off"
        )
    code = run.snapshot().code
    where = code.notebook if code is not None and code.notebook else "a notebook"
    if fmt == "notebook":
        notebook = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"cell-{index}",
                    "metadata": {"polytrack": {"execution_count": cell.execution_count}},
                    "outputs": [],
                    "source": cell.source,
                }
                for index, cell in enumerate(cells)
            ],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "polytrack": {"run_id": run.id, "notebook": where},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    lines = [
        f"# The code of run {run.id} ({run.project}/{run.name}), as the kernel of {where}",
        "# ran it, cell by cell. IPython magics and shell escapes are commented out.",
    ]
    for cell in cells:
        lines += ["", f"# %% In[{cell.execution_count}]", *_plain_python(cell.source)]
    return "\n".join(lines) + "\n"


def _cells_of(notebook: str) -> list[Cell]:
    """The code cells of a saved `.ipynb`, in the notebook's order."""
    try:
        cells = json.loads(notebook).get("cells", [])
    except (ValueError, AttributeError):
        return []
    found = []
    for index, cell in enumerate(cells):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            count = cell.get("execution_count")
            found.append(Cell(count if isinstance(count, int) else index, text))
    return found


def _plain_python(source: str) -> list[str]:
    """The cell's lines, with what only IPython runs (`%magic`, `%%cell magic`,
    `!shell`) commented out."""
    lines = source.splitlines()
    if lines and lines[0].startswith("%%"):
        return [f"# {line}" for line in lines]
    return [f"# {line}" if line.lstrip().startswith(("%", "!")) else line for line in lines]
